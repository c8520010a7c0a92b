"""docs/RELIABILITY.md, written from one run of the suites.

The figures come from the run (`figures.json`, junit XML); what each test asserts
comes from its one-line docstring; the defects the suites found and the known limits
are kept here, as text, next to the code that renders them.
"""

from __future__ import annotations

import ast
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["SuiteRun", "render"]


@dataclass
class SuiteRun:
    name: str
    paths: list[str]
    returncode: int
    seconds: float
    junit: Path

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({**asdict(self), "junit": str(self.junit)}, indent=2))

    @classmethod
    def load(cls, path: Path) -> SuiteRun:
        data = json.loads(path.read_text())
        return cls(**{**data, "junit": Path(data["junit"])})

    def outcomes(self) -> dict[str, str]:
        """Test id -> passed | failed | error | skipped."""
        if not self.junit.exists():
            return {}
        found = {}
        for case in ET.parse(self.junit).getroot().iter("testcase"):  # noqa: S314 - our junit
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed"}.get(child.tag, child.tag)
            found[name] = outcome
        return found


def _docstrings(root: Path, paths: list[str]) -> dict[str, str]:
    """module::test_name -> the test's docstring, on one line."""
    found = {}
    for base in paths:
        for path in sorted((root / base).rglob("test_*.py")):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    doc = " ".join((ast.get_docstring(node) or "").split())
                    found[f"{path.stem}::{node.name}"] = doc
    return found


def _answers(answers: dict[str, int] | None) -> str:
    if not answers:
        return ""
    return ", ".join(f"{status}: {count}" for status, count in answers.items())


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _tests(run: SuiteRun, docs: dict[str, str], prefix: str) -> list[str]:
    outcomes = run.outcomes()
    grouped: dict[str, list[str]] = {}
    for test_id, outcome in outcomes.items():
        base = test_id.split("[", 1)[0]
        if base.split("::")[0].startswith(prefix):
            grouped.setdefault(base, []).append(outcome)
    rows = []
    for base, results in grouped.items():
        passed = results.count("passed")
        verdict = f"{passed}/{len(results)} passed" if passed != len(results) else "passed"
        if len(results) > 1 and passed == len(results):
            verdict = f"passed ({len(results)} cases)"
        rows.append([f"`{base.split('::')[1]}`", verdict, docs.get(base, "")])
    if not rows:
        return ["_(not run)_"]
    return _table(["test", "result", "what it asserts"], rows)


def _scenarios(figures: dict[str, Any], suite_prefix: str) -> list[dict[str, Any]]:
    scenarios: list[dict[str, Any]] = figures.get("scenarios", [])
    return [s for s in scenarios if s["suite"].startswith(suite_prefix)]


def _soak(figures: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    rows = _scenarios(figures, "soak")
    verdicts = [r for r in rows if r["name"] == "verdict"]
    if not verdicts:
        return ["_(the soak was not run: `make reliability` runs it)_"], {}
    verdict = verdicts[-1]
    config = verdict["config"]
    lines = [
        f"{config['tenants']} tenants, {config['rate']:g} requests a second from "
        f"{config['workers']} clients for {verdict['seconds']} s (bounded to "
        f"{config['max_requests']} requests): starts, appends and restarts (a third to a half "
        "of them streamed) and reads, with the faults below applied one after another, each "
        f"held a few seconds, then mended, then {config['recovery_s']:g} s of recovery judged "
        "by the same rules.",
        "",
    ]
    table = [
        [
            r["name"],
            r["kind"],
            r["requests"],
            _answers(r["answers"]),
            r["undocumented"],
        ]
        for r in rows
        if r["name"] != "verdict"
    ]
    lines += _table(["phase", "part", "requests", "answers", "undocumented"], table)
    turns = verdict["turns"]
    lines += [
        "",
        f"Turns: {turns.get('ok', 0)} told stored, {turns.get('unstored', 0)} told not stored "
        f"(`Gateway-Stored: false`), {turns.get('broken', 0)} streams that broke, "
        f"{turns.get('failed', 0)} refused or failed.",
        f"Verdict: {verdict['undocumented']} undocumented answers, "
        f"{verdict['isolation_breaches']} cross-tenant reads, data problems: "
        f"{verdict['data_problems'] or 'none'}.",
    ]
    return lines, verdict


def _fuzz(fuzz: dict[str, Any]) -> list[str]:
    if not fuzz.get("ran"):
        return [
            f"Not part of this run ({fuzz.get('reason', 'not asked')}). The short fuzz tier "
            "(tests/e2e/test_fuzz.py) runs in `make test`; `make reliability` runs "
            "`make fuzz` first when the target exists."
        ]
    lines = [
        f"`make fuzz` (tests/e2e/test_fuzz.py, long tier) exited {fuzz['status']} after "
        f"{fuzz['seconds']} s."
    ]
    summary = fuzz.get("summary")
    if not isinstance(summary, dict):
        return [*lines, "", "```", *fuzz.get("tail", []), "```"]
    lines += [
        "",
        f"Schemathesis {summary.get('schemathesis')}, seed {summary.get('seed')}, phases "
        f"{', '.join(summary.get('phases', []))}: {summary.get('examples')} requests generated "
        f"over {summary.get('operations')} operations, {summary.get('failures')} failures, "
        f"{summary.get('errors')} errors. Known defects it skips, still open: "
        f"{summary.get('known_defects') or 'none'}.",
        "",
    ]
    rows = [
        [r["role"], r["examples"], _answers(r.get("statuses")), len(r.get("failures", []))]
        for r in summary.get("roles", [])
    ]
    lines += _table(["key role", "requests", "answers", "failures"], rows)
    return lines


def _records(text: str, fields: tuple[str, ...]) -> list[list[str]]:
    """Blocks separated by blank lines; in each, `field: text` lines, wrapped freely."""
    rows = []
    for block in text.strip().split("\n\n"):
        values: dict[str, list[str]] = {}
        current = ""
        for line in block.splitlines():
            name, sep, rest = line.partition(": ")
            if sep and name in fields:
                current = name
                values[current] = [rest.strip()]
            else:
                values[current].append(line.strip())
        rows.append([" ".join(values.get(f, [])) for f in fields])
    return rows


DOCUMENTED = _records(
    """
when: Mistral 4xx (429 included)
gets: the same status and body; Retry-After passed on

when: Mistral 429 asking for at most MISTRAL_RETRY_MAX_MS
gets: retried after that delay, then answered

when: Mistral 5xx, a reset, an answer cut short
gets: 502 `upstream_unavailable` (+ Retry-After if Mistral gave one)

when: Mistral silent, or slower than MISTRAL_TIMEOUT_MS
gets: 504 `upstream_timeout`

when: Mistral's 200 is not JSON
gets: 502 `upstream_unavailable`, nothing stored

when: Mistral's answer has an entry type the gateway does not know
gets: relayed as sent, and stored (answers and history)

when: a stream breaks mid-way
gets: a `conversation.response.error` event; entries stored `incomplete`, replaced by
  Mistral's whole entries when a later turn's history holds them

when: the caller leaves a stream mid-way
gets: the gateway reads the stream on to its end (ABANDONED_STREAM_READ_S, _BYTES),
  charges the usage Mistral reports and stores the turn whole; past those bounds the
  entry is stored `incomplete` and the turn keeps its token reservation

when: a body holds NaN, Infinity, -Infinity or a number that overflows (1e400)
gets: 422 `validation_error` naming the field (`finite_number`); nothing sent upstream

when: Mistral's history holds a value PostgreSQL cannot (NUL, lone surrogate, NaN)
gets: the entry is stored with it replaced, marked `unstorable`; later turns store

when: a body over MAX_BODY_BYTES, by Content-Length or chunked
gets: 413 `payload_too_large`, read by the caller (the body is read and discarded up to
  MAX_DISCARD_BYTES first); broken chunked framing: 400

when: a start repeated with its Idempotency-Key after the gateway failed past Mistral's
  answer
gets: the conversation the first attempt made (stored if it was not); Mistral is called
  once

when: the circuit is open
gets: 503 `circuit_open` + Retry-After; Mistral is not called

when: PostgreSQL unreachable, or the pool exhausted
gets: 503 `service_unavailable` + Retry-After; nothing half-written

when: the write fails after Mistral answered
gets: 200 with `Gateway-Stored: false` (a stream ends with a `: gateway-stored: false`
  comment)

when: Redis unreachable
gets: fail-open: served, without rate-limit headers; fail-closed: 503 + Retry-After;
  the circuit breaker falls back to a local one

when: a function dies
gets: the load balancer's 502 `backend_unavailable`; a stream in flight is cut, never
  ended cleanly

when: over the rate limit or token budget
gets: 429 + Retry-After; nothing sent upstream
""",
    ("when", "gets"),
)

DEFECTS = _records(
    """
defect: Mistral answering 200 with a body that is not JSON gave a 500 (`internal_error`)
fix: `shared/conversations/turns.py`: `_answer_body` reads the answer; anything but a JSON
  object (or one naming no conversation) is a 502 `upstream_unavailable`, and nothing is stored
test: `test_faults_mistral.py::test_start_fault_answers_as_documented_and_stores_nothing`
  [malformed], `test_failed_appends_leave_the_stored_history_as_it_was`

defect: A body nested 10,000 levels deep (or about 1,000 inside a field) gave a 500:
  Python's JSON parser raised RecursionError
fix: `shared/http/web.py`: `json_body` answers 400 `invalid_json` for RecursionError and for
  any body nested deeper than `MAX_JSON_DEPTH` (100); `shared/agents/operations.py`: the agents
  list's `metadata` query parameter tolerates RecursionError too
test: `test_attacks_http.py::test_deeply_nested_bodies_are_400_and_the_worker_lives`

defect: A NUL character (`\\u0000`) in a name, model, metadata or an unknown input field
  was answered 200 `Gateway-Stored: false` (PostgreSQL cannot store it: the turn was
  lost); in an agent id, a key name, an agent name or a query parameter it was a 500
fix: `shared/http/web.py`: NUL in any body string or key, or in any query parameter, is a
  422 (`string`, naming where) before anything reaches Mistral
test: `test_attacks_injection.py::test_nul_characters_are_refused_with_422_not_stored_half`

defect: An append or restart body naming another tenant's `agent_id` was forwarded to
  Mistral (one API key for all tenants), and a restart stored that agent on the
  caller's new conversation
fix: `shared/conversations/turns.py`: any turn's `agent_id` must be the caller's (404 otherwise),
  checked before Mistral; append and restart bodies type-check `agent_id`
test: `test_another_tenants_agent_named_in_a_body_is_refused_before_mistral`
  (test_attacks_tenancy.py)

defect: A streamed turn whose write failed after Mistral finished ended exactly like a
  stored one: the caller was never told
fix: `shared/conversations/turns.py`: the stream then ends with a `: gateway-stored: false` SSE
  comment (SSE parsers skip comments; an idempotent replay carries it too)
test: `test_faults_postgres.py::test_stream_that_cannot_be_stored_ends_by_saying_so`

defect: With an Idempotency-Key, a turn whose idempotency record could not be completed
  (the database gone after Mistral answered) became a 503, hiding a turn Mistral had
  made (which a retry would then run again)
fix: `shared/conversations/turns.py`: `_finish` logs the failed completion and still answers with
  Mistral's answer
test: `test_faults_postgres.py::test_start_that_cannot_be_stored_is_told_plainly`
  [rel-pg-k1]

defect: When Mistral's history could not be read after a turn, its inputs were stored
  under gateway ids, and the next turn stored the same inputs again under Mistral's
  ids (a duplicated turn)
fix: `shared/conversations/store.py`: `record_turn` gives a stored provisional input the id
  and body of Mistral's entry of the same content (the row keeps its place and
  tokens); the inputs of a broken stream are marked incomplete, so never adopted
test: `test_faults_mistral.py::test_history_unreadable_after_a_turn_is_reconciled_by_the_next_turn`

defect: With Redis down, the local breaker opened but calls kept reaching Mistral for up
  to 250 ms: the cached `closed` state hid it
fix: `shared/limits/breaker.py`: opening the local breaker updates the cached state
test: `test_faults_redis.py::test_breaker_falls_back_to_a_local_circuit_while_redis_is_down`

defect: functions-framework reads every request's whole body before answering: a 413
  or a 401 first read the body it refused into memory, and a Content-Length that lied
  held a worker thread for ever
fix: `shared/http/web.py`: an answer to a request whose body the gateway did not read is
  sent as a stream, which the framework leaves alone (gunicorn then drains at most
  5 s and closes)
test: `test_attacks_http.py::test_oversized_and_lying_bodies_are_413_at_once`

defect: The local router (the load balancer's stand-in) left a caller waiting for ever
  when a function died mid-request (the WSGI server took the backend's ConnectionError
  for the caller's), and could end a cut stream cleanly
fix: `devstack/router.py`: a dead backend is a 502 `backend_unavailable` in the
  gateway's error shape; a backend dying mid-answer cuts the caller's connection
test: `test_faults_process.py::test_turn_in_flight_when_start_dies_is_a_502_and_stores_nothing`,
  `test_start_killed_mid_stream_breaks_the_stream_and_is_replaced`

defect: (session 6, found by the soak) A restart whose history Mistral could not give
  stored only its own turn, though Mistral's new conversation begins with the source's
  entries up to the one it restarts from: the stored conversation was no prefix of
  Mistral's; and once that prefix was copied, a restart cut short stored it complete for
  a conversation Mistral may not have kept
fix: `shared/conversations/turns.py`: the provisional history of a restart is the source's
  stored entries through `from_entry_id`, then the turn's; marked incomplete with the
  turn when the turn did not finish (`store.entries_through`)
test: `test_start.py::test_a_restart_stored_without_mistrals_history_keeps_the_branched_prefix`,
  `test_a_restart_cut_short_stores_its_branched_prefix_as_incomplete`

defect: The local router answered 500 to a Content-Length that was no number (found by
  `make fuzz` inside `make reliability`), and tried to read a body of whatever length
  was claimed into memory
fix: `devstack/router.py`: a Content-Length that is no length is a 400, one beyond Cloud
  Run's 32 MiB request limit a 413, both in the gateway's error shape
test: `test_attacks_http.py::test_router_refuses_unframeable_and_oversized_requests`

defect: (issue 16, a held-out attack run) A body holding `NaN`, `Infinity` or `1e400`
  reached Mistral and was answered, then could not be stored (jsonb refuses them), and
  every later turn failed on the same value: Mistral held the turns, the gateway none
fix: `shared/jsonsafe.py`: bodies are read with non-finite numbers marked, and
  `shared/http/web.py`'s `check_storable` answers 422 naming the field, on every JSON route
  and in batch messages; an entry the database cannot hold is stored with the value
  replaced and marked `unstorable` (migration 0004), so one value never stops a
  conversation being stored
test: `test_turn_values.py::test_a_non_finite_number_is_422_and_never_reaches_mistral`
  (each value in each position, start and append, streaming and not),
  `test_an_entry_the_database_cannot_hold_does_not_poison_the_conversation`

defect: (issue 16) A caller that left a stream mid-way spent nothing: the usage event
  said 0 and the reservation was handed back (32,771 tokens produced); the entry stored
  from the cut stream kept Mistral's id, so the next turn skipped it and the stored
  conversation never equalled Mistral's
fix: `shared/conversations/turns.py`: a stream the caller left is read on to its end, within
  ABANDONED_STREAM_READ_S and _BYTES, and settled with Mistral's usage; a turn that
  never finished keeps its reservation; `shared/conversations/store.py`: an entry stored
  `incomplete` is replaced by Mistral's whole entry on the next turn
test: `tests/e2e/test_abandoned_stream_reset.py`, `test_abandoned_stream.py`

defect: (issue 16) Budgets overspent under concurrency: 50 streaming starts over 2 keys
  under a day budget of 1,000 spent 1,550 (1,860 here): a turn was reserved as
  characters / 4 + max_tokens, which undercounts word-dense text and sees nothing
  Mistral adds (instructions, history)
fix: `shared/limits/estimate.py`: the reservation counts inputs high (a token per word or
  mark), the body's and agent's instructions and tools, the conversation's last stored
  prompt and completions since, and max_tokens, capped by MODEL_CONTEXT_TOKENS
test: `tests/e2e/test_sdk_budgets.py`, `test_reservation.py`

defect: (issue 16) An Idempotency-Key repeat after Mistral made the conversation and the
  gateway then failed started a second conversation; a key record that could not be
  completed turned Mistral's answer into a 500
fix: `shared/conversations/unstored.py`, `shared/conversations/turns.py`: the conversation
  an idempotent start made
  is remembered in Redis as soon as Mistral names it; the repeat stores it if need be
  and answers with it, plain or streamed
test: `test_idempotent_recovery.py::`
  `test_a_repeat_after_a_failure_past_mistrals_answer_calls_mistral_once`

defect: (issue 16) A 10 MB body through the router was a 502 `backend_unavailable`:
  the function answered 413 and closed while the body was still coming; a chunked body
  with broken framing was a 500; the router dropped chunked bodies (and its server's
  dechunker crashed the process on a huge chunk size)
fix: `shared/http/web.py`: a body past the limit is read and discarded up to
  MAX_DISCARD_BYTES before the 413; broken framing is a 400; `devstack/router.py`
  reads chunked framing itself and relays the body
test: `test_attacks_http.py::test_a_10_mb_body_is_a_413_the_caller_reads`,
  `test_malformed_chunked_framing_is_a_400`, `test_the_router_relays_a_chunked_body`
""",
    ("defect", "fix", "test"),
)

UNSTORED = """\
A turn answered `Gateway-Stored: false` (or a stream ending `: gateway-stored: false`)
reached Mistral and was answered, but the gateway's write failed (the database went
away between Mistral's answer and the write). Nothing of it is half-written: the
turn's entries and its usage event are written together or not at all. What happens next:

- an **append** is written later: the next successful turn of that conversation stores
  Mistral's whole history, including the missed entries
  (`test_append_that_cannot_be_stored_is_told_plainly_and_written_with_the_next_turn`);
- a **start** or **restart** is remembered in Redis for a week (`shared.conversations.unstored`: the
  tenant, the key, the conversation's request fields, the turn's usage); the next append
  or restart naming it, by the same tenant, first stores it from Mistral's history, with
  the lost turn's usage event (`test_start_that_cannot_be_stored_is_told_plainly`,
  `test_unstored_start_is_stored_by_the_next_turn_on_it`). Until then the gateway's reads
  answer 404 for it; another tenant naming it gets 404. With Redis away as well nothing
  is remembered: the failure is logged (`turn of conversation ... answered by Mistral but
  not stored`, with the conversation id) and the access line carries `stored: false`.

The database mirrors Mistral: a turn Mistral kept although its answer to the gateway
failed (a 5xx after acting, `status_after`) is stored with the conversation's next
successful turn, because the gateway stores Mistral's history. A conversation such a
failure created (a start) is never stored: the gateway never learns its id.

A write never fails for a value in it: what PostgreSQL cannot hold (a NUL, a lone
surrogate, a non-finite number, in an entry Mistral keeps) is replaced and the entry
marked `unstorable`, and the caller's bodies holding such values are refused with 422
before Mistral. A start sent with an `Idempotency-Key` whose write and key record both
failed is found again by its repeat, which stores it and answers with it
(`test_a_repeat_after_a_failure_past_mistrals_answer_calls_mistral_once`).
"""

LIMITS = """\
- **Slow clients (gunicorn gthread).** A connection that sends nothing holds one of
  the function's THREADS worker threads for up to 5 s (gunicorn 27's
  `DEFAULT_WORKER_DATA_TIMEOUT`) before it is parked in the poller; a burst of THREADS
  silent connections delays other callers by up to 5 s (asserted). A client that
  trickles a body holds one thread until it finishes or leaves: fewer than THREADS do
  not slow anyone (asserted); THREADS of them at once stall an instance (measured,
  not asserted: the probe waits past 30 s). functions-framework sets no gunicorn
  `timeout` unless `CLOUD_RUN_TIMEOUT_SECONDS` is set; on Cloud Run the request
  timeout ends such connections, and Cloud Armor rate limits per client bound how many
  one source can open. The gateway does not count on the front end buffering request
  bodies.
- **Request line.** functions-framework runs gunicorn with `limit_request_line=0`: a
  function reached directly reads a 1 MB URL (served normally, asserted); the router,
  like a load balancer, refuses it with 414.
- **Pool timeout.** A request waits at most DB_POOL_TIMEOUT_MS for a connection, and
  each statement at most as long again (the connection's socket timeout is the same
  value), so a stuck database answers 503 within about twice the pool timeout per
  statement; the server-side `statement_timeout` (DB_STATEMENT_TIMEOUT_MS, 5 s) is
  longer than that socket timeout, so an abandoned statement may run on for a while.
- **Crash with an Idempotency-Key in flight.** A retry with the same key waits until
  the dead holder's lock expires (MISTRAL_TIMEOUT_MS + 10 s). A start or restart then
  answers with the conversation Mistral made, if Mistral named it before the crash
  (remembered in Redis). An append is run again: its conversation exists either way,
  and Mistral offers no way to ask whether a given input was appended, so Mistral may
  hold that turn twice, and the gateway stores what Mistral holds.
- **Token budgets** hold to the budget plus one turn when turns set `max_tokens`: the
  reservation (`shared/limits/estimate.py`) counts prompts high but is an estimate, and a turn
  without `max_tokens` reserves TOKEN_RESERVE_COMPLETION for its completion, which it
  may exceed. A turn whose stream never finished keeps its reservation, as Mistral's
  usage for it is not known.
- **Chunk sizes past the limit, straight to a function.** gunicorn does not bound a
  chunk's declared size, so a chunked body declaring more than it sends reaches a
  function as a slow body (see slow clients). The load balancer, and the local router,
  read the framing first: an overflowing size is a 400 there.
- **Odd stream events** (an unknown event type, or data that is not JSON) are relayed
  as Mistral sent them; the gateway does not rewrite streams. The official SDK raises
  on an event whose data is not JSON.
- **Ids the gateway cannot know.** Only the `operator` role crosses tenants; an admin
  is confined to its own (issue 15). Agent ids (a turn's `agent_id`, an agent's
  `handoffs`, a key's `allowed_agents`) and a restart's `from_entry_id` are checked
  against the caller's tenant before Mistral is called. Library and file ids inside
  tools or input chunks (`document_library`'s `library_ids`, file references) are
  Mistral objects the gateway does not store, so they are forwarded unchecked; the
  one Mistral API key behind the gateway can reach every tenant's libraries.
- **Timing.** Keys are found by their SHA-256 digest in PostgreSQL; no secret is
  compared in Python (asserted by an AST scan of the authentication path). A near-miss
  key's digest shares no more prefix with the real one than a random key's (asserted),
  and near-miss lookups take no longer than random ones within 50 % (asserted; on a
  shared machine nothing finer can be measured). The database's btree compares digests
  with memcmp; that is not constant-time, but an attacker controls no digest's prefix.
- **Killed mid-batch** is covered by the batch suite:
  `tests/functional/test_batch_served.py::test_killed_mid_batch_then_redelivered_runs_every_item_exactly_once`.
- **Circuit breaker shared by instances** is covered by `tests/e2e/test_breaker.py`; the
  stack here runs with a high threshold so that Mistral faults are seen one by one.
"""


def render(
    runs: list[SuiteRun], figures: dict[str, Any], fuzz: dict[str, Any], root: Path, run_id: str
) -> str:
    totals = figures.get("totals", {})
    docs = _docstrings(root, [p for run in runs for p in run.paths])
    soak_lines, verdict = _soak(figures)
    lost = sum(verdict.get("data_problems", {}).values()) if verdict else None
    tests = []
    for run in runs:
        outcomes = list(run.outcomes().values())
        tests.append(
            f"{run.name}: {outcomes.count('passed')} passed, "
            f"{len(outcomes) - outcomes.count('passed')} not, in {run.seconds:.0f} s"
        )
    summary = [
        ["requests answered while a fault was active", totals.get("requests_under_fault", 0)],
        ["faults injected", totals.get("faults_injected", 0)],
        ["attack inputs sent (keys, ids, SQL, headers, bodies)", totals.get("attack_inputs", 0)],
        ["soak requests", totals.get("soak_requests", 0)],
        [
            "turns told stored, then lost or duplicated (soak)",
            "not measured (soak not run)" if lost is None else lost,
        ],
        [
            "cross-tenant reads or writes",
            "none seen"
            if not verdict or verdict.get("isolation_breaches", 0) == 0
            else verdict["isolation_breaches"],
        ],
        [
            "fuzz requests generated (schemathesis, 5xx or nonconformance found)",
            (
                f"{fuzz['summary'].get('examples')} ({fuzz['summary'].get('failures')})"
                if fuzz.get("ran") and isinstance(fuzz.get("summary"), dict)
                else "not in this run"
            ),
        ],
        ["tests", "; ".join(tests)],
    ]
    fault_rows = [
        [
            s["suite"].split(": ", 1)[1],
            s["name"],
            s.get("requests", ""),
            _answers(s.get("answers")),
            _answers(s.get("background")),
        ]
        for s in _scenarios(figures, "faults")
    ]
    attack_rows = [
        [
            s["suite"].split(": ", 1)[1],
            s["name"],
            _answers(s.get("answers"))
            or ", ".join(f"{k}: {v}" for k, v in s.items() if k not in ("suite", "name")),
        ]
        for s in _scenarios(figures, "attacks")
    ]
    by_name = {r.name: r for r in runs}
    suite_run = by_name.get("faults-and-attacks")
    lines = [
        "# Reliability",
        "",
        "What was tried against the gateway, how often, and what held. Generated by",
        "`python -m reliability` (`make reliability`); do not edit by hand, the text lives",
        "in `reliability/report.py`.",
        "",
        f"This run: `.local/reliability/{run_id}` (UTC), rendered "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, on a machine with "
        f"{os.cpu_count()} cores shared with other work.",
        "",
        "The suites run the whole local stack (`devstack.LocalStack`: embedded PostgreSQL",
        "and Valkey, one functions-framework process per function, the router) with",
        "Mistral played by the stand-in behind a TCP relay, and break its parts for real:",
        "queued upstream faults, servers stopped or SIGKILLed, functions SIGKILLed and",
        "replaced. `make test` runs the fault and attack suites (`tests/reliability`);",
        "`make reliability` adds the long fuzz and the soak (`tests/soak`) and rewrites",
        "this file.",
        "",
        "## Summary",
        "",
        *_table(["", ""], summary),
        "",
        "## What callers are promised (DESIGN §7, and the gateway's own additions)",
        "",
        *_table(["when", "the caller gets"], DOCUMENTED),
        "",
        "## Faults (tests/reliability/test_faults_*.py)",
        "",
        "Each under load: background readers, or steady mixed traffic whose every turn is",
        "checked against the database afterwards (`reliability.ledger.verify`).",
        "",
        *_table(["part", "fault", "requests", "answers", "background answers"], fault_rows),
        "",
        *(_tests(suite_run, docs, "test_faults") if suite_run else ["_(not run)_"]),
        "",
        "## Soak (tests/soak, `reliability.soak`)",
        "",
        *soak_lines,
        "",
        "## Attacks (tests/reliability/test_attacks_*.py)",
        "",
        *_table(["kind", "attack", "answers"], attack_rows),
        "",
        *(_tests(suite_run, docs, "test_attacks") if suite_run else ["_(not run)_"]),
        "",
        "## Fuzz",
        "",
        *_fuzz(fuzz),
        "",
        "## Defects the suites found, and their fixes",
        "",
        *_table(["defect", "fix", "test that catches it"], DEFECTS),
        "",
        "## A turn answered `Gateway-Stored: false`",
        "",
        UNSTORED,
        "## Known limits",
        "",
        LIMITS,
    ]
    return "\n".join(lines)

"""Schemathesis against the whole local stack: every operation of the OpenAPI document, fuzzed
with a key of each role, must answer without 5xx and exactly as the document says.

Two tiers, chosen by FUZZ_TIER:

    short  (default, in `make test`)  fuzzing phase only, a few examples per operation and
                                      generation mode, fixed seed, deterministic: about a minute
    long   (`make fuzz`)              many examples (FUZZ_EXAMPLES), the coverage phase (boundary
                                      values, every required part missing, undocumented methods)
                                      and stateful chains along the document's links; writes a
                                      summary to FUZZ_SUMMARY (bench/fuzz-summary.json)

Each role's run has two passes. The main pass fuzzes every public operation with valid and
invalid data, except that bodies Mistral stores (start, append, restart, agent create and
update) are valid there: the stand-in checks less than Mistral and would store what Mistral
refuses, and later reads would relay it. The sandbox pass sends those operations their invalid
bodies as a second tenant, and checks only the error answers' bodies against the schemas.

Checks, and why:

    not_a_server_error            a 5xx is a defect (upstream is the stand-in, which is healthy)
    status_code_conformance       every status is documented for its operation
    content_type_conformance      JSON, event stream, or no body, as documented
    response_schema_conformance   bodies, and each frame of an event stream, match the schemas
                                  (sandbox pass: error answers only, see above)
    response_headers_conformance  documented required headers (X-Request-Id, Retry-After, Allow)
    gateway_positive_data_acceptance
                                  a request the document calls valid is not refused with 4xx
                                  other than 403 (the role), 404 (an id not the caller's) or 409
                                  (state): the document is no looser than what the gateway takes.
                                  A refusal Mistral (the stand-in) makes and the gateway relays
                                  is Mistral's judgement of a body its SDK's schema allows (its
                                  server checks more than that schema says), not the gateway's
    ignored_auth                  every protected operation answers 401 without a valid key
    (not mostly rejected)         as admin, no operation refuses every valid case of a scenario
                                  with 400/422 (schemathesis' "mostly rejected generated data"):
                                  the document's constraints must say what validation refuses
                                  (the gateway's: refusals that are all Mistral's, relayed, are
                                  its server checking more than its SDK's schema says)
    gateway_negative_data_rejection
                                  negative_data_rejection on the gateway's own routes only, whose
                                  schemas are the gateway's validation. On Mistral's routes the
                                  body goes on to Mistral (the stand-in), which may rightly take
                                  what the document calls invalid. A scalar query parameter sent
                                  twice is not invalid (the first value counts, as in Flask), nor
                                  is a query the document states only in part ("printable").
    unsupported_method            (long) a method a path does not have answers 405 with Allow

Generation is steered where no schema can say what is valid, never by relaxing a check: the run
seeds a conversation, an agent, a batch and keys for its tenant and swaps their ids into most
cases (so operations on existing objects answer 200 and are checked, not only 404); valid cases
get a fresh Idempotency-Key (the same key with another body is rightly 422); tokens the gateway
issues (`cursor`, `page_token`) and usage windows longer than 366 days are dropped from valid
cases; no string holds U+0000 (the gateway refuses it everywhere, as documented; the functional
tests check that). Key ids seen in answers are not reused by the key operations, nor are links
inferred, so the fuzzer cannot revoke, rotate or throttle the keys it fuzzes with; schemathesis'
auto-signup is off, as it would take `POST /gateway/v1/keys` for a sign-up and fuzz as the keys
it made there.

Known defects (KNOWN_DEFECTS) are fixes in other modules' hands. Their failures are recognised
precisely, counted in the summary, and do not fail the run; each has a strict-xfail reproducer in
tests/functional/test_openapi_conformance.py that fails the suite once the fix lands, so the
entry here is removed with it. FUZZ_KNOWN_DEFECTS=strict turns them back into failures.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import strategies
from schemathesis.cli.commands.run.warnings import (
    aggregate_status_codes,
    all_positive_are_rejected,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import events, from_schema
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
)

from devstack.stack import StackInfo
from shared import openapi
from shared.container import Container
from shared.tenancy.keys import create_key

pytestmark = pytest.mark.slow

# Hypothesis imports this lazily on first use; schemathesis' worker threads would race on it
# ("cannot import name 'RandomStrategy'"). Importing it once here, single-threaded, avoids that.
strategies.randoms()

# The operator last: its tenant administration (disabling one) cannot disturb the others.
ROLES = ("admin", "user", "read_only", "operator")
ROOT = Path(__file__).resolve().parents[2]
MODEL = "mistral-small-latest"


@dataclass(frozen=True)
class Tier:
    name: str
    max_examples: int
    coverage: bool
    stateful: bool
    workers: int
    seed: int
    timeout_s: int


TIERS = {
    "short": Tier(
        "short",
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "12")),
        coverage=False,
        stateful=False,
        workers=6,
        seed=int(os.environ.get("FUZZ_SEED", "20261128")),
        timeout_s=300,
    ),
    "long": Tier(
        "long",
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
        coverage=True,
        stateful=True,
        # One worker: the coverage phase makes hypothesis parse lambdas with `ast` from every
        # worker thread at once, which CPython 3.11 does not survive ("AST constructor
        # recursion depth mismatch").
        workers=1,
        seed=int(os.environ.get("FUZZ_SEED", "20261128")),
        timeout_s=7200,
    ),
}
TIER = TIERS[os.environ.get("FUZZ_TIER", "short")]

# Statuses a valid request may rightly get (see the module docstring), and an invalid one.
_VALID_ANSWERS = ["2xx", "403", "404", "409"]
_INVALID_ANSWERS = ["400", "401", "403", "404", "405", "409", "413", "415", "422"]
# Changes whose targets must not come from ids seen in answers: those include the fuzzer's
# own keys and, for an operator, every tenant of the stack (limiting or disabling `default`
# would fail the tests that run after this one).
_KEY_CHANGES = [
    "gateway.keys.update",
    "gateway.keys.revoke",
    "gateway.keys.rotate",
    "gateway.tenants.update",
]
# Operations whose body goes on to Mistral, which stores it: an invalid one the stand-in
# accepts is sent as another tenant (the sandbox), so the fuzzing tenant's data stays valid.
_FORWARDED = (
    "conversations.start",
    "conversations.append",
    "conversations.restart",
    "agents.create",
    "agents.update",
)
# Query parameters holding a token the gateway issued: a generated one is rightly 422.
_TOKENS = ("cursor", "page_token")
# The stand-in writes up to `max_tokens` words (at most 32,768): generated values are capped
# lower so that a fuzz run spends its time on the gateway, not on building long replies.
_STANDIN_MAX_TOKENS = 4096


# -- known defects ----------------------------------------------------------------------------


# None open: every defect fuzzing found is fixed (each with a test in
# tests/functional/test_openapi_conformance.py). A new one is listed here with its matcher
# only while its fix is pending.
KNOWN_DEFECTS: dict[str, Callable[[Any, str, Any], bool]] = {}
if os.environ.get("FUZZ_KNOWN_DEFECTS") == "strict":
    KNOWN_DEFECTS = {}


# -- the two narrowed checks ------------------------------------------------------------------


def _scalar_repeated(case: Any) -> bool:
    """A query parameter the document says is one value, sent several times (first one wins)."""
    return any(
        isinstance(value, list | dict) and name not in _ARRAY_QUERY_PARAMETERS
        for name, value in (case.query or {}).items()
    )


_ARRAY_QUERY_PARAMETERS = {
    parameter["name"]
    for item in openapi.document()["paths"].values()
    for operation in item.values()
    for parameter in operation["parameters"]
    if parameter.get("in") == "query" and parameter.get("schema", {}).get("type") == "array"
}


# "METHOD /path" of every operation (the document lists only what the router reaches): the
# run must fuzz each of them.
_PUBLIC_OPERATIONS = {
    f"{method.upper()} {path}"
    for path, item in openapi.document()["paths"].items()
    for method in item
}


# Operations whose query the document states only in part: "printable text" (a parameter whose
# pattern is its ASCII part) and the bounds of a metadata filter are more than JSON Schema says,
# so an "invalid" value may be fine.
_PRINTABLE_PATTERN = "^[ -~]*$"
_PARTLY_STATED_QUERY = {"GET /gateway/v1/conversations"} | {
    f"{method.upper()} {path}"
    for path, item in openapi.document()["paths"].items()
    for method, operation in item.items()
    for parameter in operation["parameters"]
    if parameter.get("in") == "query"
    and parameter.get("schema", {}).get("pattern") == _PRINTABLE_PATTERN
}


def _negative_query(case: Any) -> bool:
    component = case.meta.components.get(ParameterLocation.QUERY) if case.meta else None
    return component is not None and component.mode is GenerationMode.NEGATIVE


@schemathesis.check
def gateway_negative_data_rejection(ctx: Any, response: Any, case: Any) -> bool | None:
    """negative_data_rejection, but a scalar query parameter sent twice is not invalid data."""
    if _scalar_repeated(case):
        return None
    if case.operation.label in _PARTLY_STATED_QUERY and _negative_query(case):
        return None
    result: bool | None = negative_data_rejection(ctx, response, case)
    return result


def _mistral_refusal(response: Any) -> bool:
    """A 4xx that is Mistral's own, relayed (its `{"detail": [...]}` validation error or any
    body without the gateway's `"object": "error"`): the gateway passed the request on."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return False
    return 400 <= response.status_code < 500 and not (
        isinstance(body, dict) and body.get("object") == "error"
    )


@schemathesis.check
def gateway_positive_data_acceptance(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance of the gateway's own refusals: what Mistral refuses of a body
    the SDK's schema allows is Mistral's judgement (its server checks more than its SDK's
    JSON Schema says), relayed unchanged."""
    if _mistral_refusal(response):
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


@schemathesis.check
def error_response_schema_conformance(ctx: Any, response: Any, case: Any) -> bool | None:
    """response_schema_conformance of error answers only (the sandbox pass)."""
    # The sandbox tenant's agents and conversations hold whatever invalid data the stand-in
    # accepted (it checks less than Mistral); its 2xx answers echo it, as Mistral's would not.
    if response.status_code < 300:
        return None
    result: bool | None = response_schema_conformance(ctx, response, case)
    return result


# -- the fuzzing tenant -----------------------------------------------------------------------


@dataclass
class Known:
    """Objects of the fuzzing tenant, swapped into generated path parameters."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    entry_ids: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def tenant() -> str:
    return "fuzz-" + secrets.token_hex(4)


@pytest.fixture(scope="module")
def keys(stack_container: Container, tenant: str) -> dict[str, str]:
    """A key of each role in the fuzzing tenant and in its sandbox."""
    made: dict[str, str] = {}
    with stack_container.pool.transaction() as conn:
        for role in ROLES:
            made[role] = create_key(conn, owner_id=tenant, name=f"fuzz {role}", role=role).secret
            made[f"{role}:sandbox"] = create_key(
                conn, owner_id=tenant + "-sandbox", name=f"sandbox {role}", role=role
            ).secret
    return made


@pytest.fixture(scope="module", autouse=True)
def _quiet_router() -> Iterator[None]:
    """The router logs every request; thousands of lines would bury a failure's report."""
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def seed(stack: StackInfo, stack_container: Container, tenant: str, admin_key: str) -> Known:
    """A model conversation, an agent and its conversation, a batch, and keys to change."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx2.Client(base_url=stack.url, headers=admin, timeout=30) as http:
        agent = http.post(
            "/v1/agents", json={"model": MODEL, "name": "fuzz-agent-" + secrets.token_hex(4)}
        )
        agent.raise_for_status()
        agent_id = agent.json()["id"]
        conversations = []
        for picked in ({"model": MODEL}, {"agent_id": agent_id}):
            started = http.post("/v1/conversations", json={"inputs": "hello", **picked})
            started.raise_for_status()
            conversations.append(started.json()["conversation_id"])
        history = http.get(f"/v1/conversations/{conversations[0]}/history")
        history.raise_for_status()
        entry_ids = [e["id"] for e in history.json()["entries"] if "id" in e]
    batch_id = "batch_" + secrets.token_hex(8)
    with stack_container.pool.transaction() as conn:
        conn.run(
            "INSERT INTO batches (id, owner_id, message_id, status, item_count, published_at)"
            " VALUES (:id, :owner, 'msg-1', 'succeeded', 2, now())",
            id=batch_id,
            owner=tenant,
        )
        for idx, status in enumerate(("succeeded", "failed")):
            conn.run(
                "INSERT INTO batch_items (batch_id, idx, owner_id, custom_id, status, request,"
                " conversation_id, result, error, attempts, started_at, finished_at)"
                " VALUES (:batch, :idx, :owner, :custom, :status, CAST(:request AS jsonb),"
                " :conversation, CAST(:result AS jsonb), CAST(:error AS jsonb), 1, now(), now())",
                batch=batch_id,
                idx=idx,
                owner=tenant,
                custom=f"item-{idx}",
                status=status,
                request=json.dumps({"model": MODEL, "inputs": "hi"}),
                conversation=conversations[0] if idx == 0 else None,
                result=json.dumps({"conversation_id": conversations[0]}) if idx == 0 else None,
                error=json.dumps({"message": "upstream refused"}) if idx == 1 else None,
            )
        key_ids = [
            create_key(conn, owner_id=tenant, name=f"target {i}", role="user").principal.key_id
            for i in range(3)
        ]
    return Known(
        ids={
            "conversation_id": conversations,
            "agent_id": [agent_id],
            "batch_id": [batch_id],
            "key_id": key_ids,
            "version": ["0"],
        },
        entry_ids=entry_ids,
    )


# -- one run ----------------------------------------------------------------------------------


def _config(stack: StackInfo, key: str, *, sandbox: bool) -> SchemathesisConfig:
    """The main pass: every operation, both modes (forwarded bodies valid only). The sandbox
    pass: the forwarded operations, invalid data only, as the sandbox tenant."""
    operations: list[dict[str, Any]] = [
        {
            "include-path-regex": "^/gateway/v1/",
            "checks": {"gateway_negative_data_rejection": {"enabled": True}},
        },
    ]
    if sandbox:
        operations.append({"exclude-operation-id": list(_FORWARDED), "enabled": False})
    else:
        operations += [
            {"include-operation-id": list(_FORWARDED), "generation": {"mode": "positive"}},
            # Key ids seen in answers include the fuzzer's own keys: never revoke or throttle
            # those (the seeded targets are swapped in instead).
            {
                "include-operation-id": _KEY_CHANGES,
                "phases": {
                    "fuzzing": {"extra-data-sources": {"responses": False}},
                    "coverage": {"extra-data-sources": {"responses": False}},
                },
            },
        ]
    return SchemathesisConfig.from_dict(
        {
            "seed": TIER.seed,
            "workers": TIER.workers,
            "base-url": stack.url,
            # The key of the role under test. Not auto-signup: schemathesis would take
            # `POST /gateway/v1/keys` (it answers a secret) for a sign-up and fuzz as whatever
            # key it made there.
            "auth": {"auto-signup": False, "openapi": {"bearerAuth": {"bearer": key}}},
            "request-timeout": 30,
            # Failures show the values that caused them: the keys are throwaway.
            "output": {"sanitization": {"enabled": False}},
            "generation": {
                "mode": "negative" if sandbox else "all",
                "max-examples": TIER.max_examples,
                "database": "none",
                "deterministic": TIER.name == "short",
                # The gateway refuses U+0000 in every body and query (PostgreSQL cannot store
                # it), as the document says; the functional tests check that refusal.
                "allow-x00": False,
            },
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": TIER.coverage},
                # Only the document's own links: inferred ones would chain `GET /gateway/v1/keys`
                # into revoking the keys this run fuzzes with.
                "stateful": {
                    "enabled": TIER.stateful and not sandbox,
                    "max-steps": 6,
                    "inference": {"algorithms": []},
                },
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": not sandbox},
                "error_response_schema_conformance": {"enabled": sandbox},
                "response_headers_conformance": {"enabled": True},
                "gateway_positive_data_acceptance": {"enabled": True},
                # Read by gateway_positive_data_acceptance, which runs it on the gateway's answers.
                "positive_data_acceptance": {"enabled": False, "expected-statuses": _VALID_ANSWERS},
                "ignored_auth": {"enabled": True},
                "unsupported_method": {"enabled": TIER.coverage},
                # Read by gateway_negative_data_rejection, which runs it where it applies.
                "negative_data_rejection": {
                    "enabled": False,
                    "expected-statuses": _INVALID_ANSWERS,
                },
            },
            "operations": operations,
        }
    )


def _steer(schema: Any, known: Known, report: Report) -> None:
    """The hooks of the module docstring: generation steered, known defects recognised."""

    def map_case(context: Any, case: Any) -> Any:
        if isinstance(case.body, dict):
            _cap_max_tokens(case.body)
        meta = case.meta
        if meta is None:
            return case
        chooser = random.Random(f"{TIER.seed}:{case.id}")
        if not meta.is_negative_at(ParameterLocation.PATH):
            for name in list(case.path_parameters or {}):
                candidates = known.ids.get(name)
                if candidates and chooser.random() < 0.7:
                    case.path_parameters[name] = chooser.choice(candidates)
        if meta.generation.mode is not GenerationMode.POSITIVE:
            return case
        if case.query:
            for name in _TOKENS:
                case.query.pop(name, None)
            if case.operation.path == "/gateway/v1/usage":
                _usable_window(case.query)
        if case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = "fuzz-" + case.id
        body = case.body
        restart = case.operation.path.endswith("/restart") and isinstance(body, dict)
        if restart and known.entry_ids and chooser.random() < 0.7:
            body["from_entry_id"] = chooser.choice(known.entry_ids)
        return case

    def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
        check = next(iter(getattr(failure, "checks", ()) or ("",)))
        for name, matches in KNOWN_DEFECTS.items():
            if matches(case, check, response):
                report.known[name] += 1
                return False
        return True

    schema.hook(map_case)
    schema.hook(filter_failure)


def _cap_max_tokens(body: dict[str, Any]) -> None:
    args = body.get("completion_args")
    if isinstance(args, dict) and isinstance(args.get("max_tokens"), int | float):
        args["max_tokens"] = min(args["max_tokens"], _STANDIN_MAX_TOKENS)


def _usable_window(query: dict[str, Any]) -> None:
    """Drop from/to unless they form a window the usage route accepts (at most 366 days)."""
    try:
        first = date.fromisoformat(str(query["from"])) if query.get("from") else None
        last = date.fromisoformat(str(query["to"])) if query.get("to") else None
    except ValueError:
        first = last = date.min
    today = datetime.now(UTC).date()
    last_day = last or (today if first is None else max(today, first))
    first_day = first or last_day
    if first_day > last_day or (last_day - first_day).days >= 366 or first_day == date.min:
        query.pop("from", None)
        query.pop("to", None)


def _answer(recorder: Any, case_id: str) -> str:
    """The status and start of the body of the answer a failed check saw."""
    interaction = recorder.interactions.get(case_id)
    response = getattr(interaction, "response", None)
    if response is None:
        return ""
    body = getattr(response, "content", b"") or b""
    return f"{response.status_code} {body[:600].decode(errors='replace')}"


def _only_mistral_refused(recorder: Any) -> bool:
    """Every 400/422 answering a valid (positive) case of the scenario is Mistral's own,
    relayed: the gateway refused none of them (see gateway_positive_data_acceptance)."""
    refusals = []
    for case_id, interaction in recorder.interactions.items():
        node = recorder.cases.get(case_id)
        meta = getattr(getattr(node, "value", None), "meta", None)
        positive = meta is not None and meta.generation.mode is GenerationMode.POSITIVE
        response = interaction.response
        if positive and response is not None and response.status_code in (400, 422):
            refusals.append(response)
    return bool(refusals) and all(_mistral_refusal(r) for r in refusals)


@dataclass
class Report:
    """What one role's run did and found."""

    role: str
    seconds: float = 0.0
    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    known: Counter[str] = field(default_factory=Counter)
    # Operations where a scenario (a phase) refused every valid case, mostly with 400/422:
    # schemathesis' "mostly rejected generated data" (the document allows what validation
    # refuses). As in schemathesis, serving valid data in another phase does not excuse it.
    mostly_rejected: set[str] = field(default_factory=set)

    def record(self, event: events.ScenarioFinished, seen: set[tuple[str, ...]]) -> None:
        recorder = event.recorder
        self.examples[recorder.label] += len(recorder.cases)
        if all_positive_are_rejected(recorder):
            positive = aggregate_status_codes(recorder, positive_only=True)
            if positive.should_warn_about_validation_mismatch() and not _only_mistral_refused(
                recorder
            ):
                self.mostly_rejected.add(recorder.label)
        for interaction in recorder.interactions.values():
            if interaction.response is not None:
                self.statuses[str(interaction.response.status_code)] += 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                info = check.failure_info
                key = (recorder.label, check.name, info.failure.title if info else "")
                if info is None or key in seen:
                    continue
                seen.add(key)
                self.failures.append(
                    {
                        "operation": recorder.label,
                        "check": check.name,
                        "title": info.failure.title,
                        "message": info.failure.message,
                        "reproduce": info.code_sample,
                        "answer": _answer(recorder, case_id),
                    }
                )

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "seconds": round(self.seconds, 1),
            "operations": len(_operations(self.examples)),
            "stateful_examples": self.examples.get("Stateful tests", 0),
            "examples": sum(self.examples.values()),
            "examples_per_operation": dict(sorted(self.examples.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "failures": self.failures,
            "errors": self.errors,
            "mostly_rejected": sorted(self.mostly_rejected),
            "known_defects": dict(self.known),
        }

    def explain(self) -> str:
        lines = [f"{len(self.failures)} failure(s), {len(self.errors)} error(s) as {self.role}:"]
        for failure in self.failures:
            lines.append(f"- {failure['operation']}: {failure['check']}: {failure['title']}")
            lines += ["    " + line for line in failure["message"].splitlines()[:14]]
            lines.append("    " + failure["reproduce"][:2000])
            lines.append("    answered: " + failure.get("answer", "")[:600])
        lines += [f"- error: {error}" for error in self.errors]
        lines += [
            f"- mostly rejected valid data: {label}" for label in sorted(self.mostly_rejected)
        ]
        return "\n".join(lines)


def fuzz(stack: StackInfo, role: str, keys: dict[str, str], known: Known, sandbox: Known) -> Report:
    """Both passes over every operation with this role's keys."""
    report = Report(role)
    started = time.monotonic()
    seen: set[tuple[str, ...]] = set()
    for in_sandbox, ids in ((False, known), (True, sandbox)):
        key = keys[f"{role}:sandbox" if in_sandbox else role]
        schema = schemathesis.openapi.from_url(
            stack.openapi, config=_config(stack, key, sandbox=in_sandbox)
        )
        _steer(schema, ids, report)
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                report.record(event, seen)
            elif isinstance(event, events.NonFatalError):
                report.errors.append(f"{event.label}: {event.info.message}")
            elif isinstance(event, events.FatalError):
                report.errors.append(f"fatal: {event.exception!r}")
    report.seconds = time.monotonic() - started
    return report


def _operations(examples: Counter[str]) -> set[str]:
    """The operations among the scenario labels ("GET /v1/agents"; not "Stateful tests")."""
    return {label for label in examples if label.split(" ", 1)[0].isupper() and " /" in label}


def _write_summary(reports: list[Report]) -> None:
    target = os.environ.get("FUZZ_SUMMARY")
    if not target or not reports:
        return
    path = Path(target) if Path(target).is_absolute() else ROOT / target
    path.parent.mkdir(parents=True, exist_ok=True)
    phases = ["fuzzing", *(["coverage"] if TIER.coverage else [])]
    phases += ["stateful"] if TIER.stateful else []
    summary = {
        "tier": TIER.name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": TIER.seed,
        "max_examples": TIER.max_examples,
        "phases": phases,
        "schemathesis": schemathesis.__version__,
        "operations": len(set().union(*(_operations(r.examples) for r in reports))),
        "examples": sum(sum(r.examples.values()) for r in reports),
        "failures": sum(len(r.failures) for r in reports),
        "errors": sum(len(r.errors) for r in reports),
        "known_defects": dict(sum((r.known for r in reports), Counter())),
        "seconds": round(sum(r.seconds for r in reports), 1),
        "roles": [r.as_json() for r in reports],
    }
    path.write_text(json.dumps(summary, indent=2) + "\n")


@pytest.fixture(scope="module")
def reports() -> Iterator[list[Report]]:
    collected: list[Report] = []
    yield collected
    _write_summary(collected)


@pytest.mark.timeout(TIER.timeout_s)
@pytest.mark.parametrize("role", ROLES)
def test_fuzzing_finds_no_server_error_or_nonconformance(
    role: str,
    stack: StackInfo,
    stack_container: Container,
    tenant: str,
    keys: dict[str, str],
    reports: list[Report],
) -> None:
    """Every public operation, fuzzed with this role's key, answers without 5xx, as documented."""
    known = seed(stack, stack_container, tenant, keys["admin"])
    sandbox = seed(stack, stack_container, tenant + "-sandbox", keys["admin:sandbox"])
    report = fuzz(stack, role, keys, known, sandbox)
    reports.append(report)
    assert set(report.examples) >= _PUBLIC_OPERATIONS, f"fuzzed only {sorted(report.examples)}"
    assert not report.failures, report.explain()
    assert not report.errors, report.explain()
    # Other roles are refused (403) on much of the document, which hides the rate.
    if role == "admin":
        assert not report.mostly_rejected, report.explain()

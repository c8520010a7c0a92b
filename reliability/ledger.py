"""What callers were told, turn by turn, and the check that the database agrees.

Every turn a load generator sends is classified by what its caller saw:

    ok        200 and stored: no `Gateway-Stored: false` header (or, for a stream,
              a `conversation.response.done` event and no `: gateway-stored: false`
              comment after it)
    unstored  200, but told plainly that the turn was not stored
    broken    a stream that ended without `done` (an error event, or the
              connection dropped mid-way)
    failed    any other answer (4xx, 5xx, or no answer at all)

`verify` then compares, for every conversation the callers learned of, the gateway's
database with Mistral's own history (the stand-in's), and the database's
conversations with the ledger:

    lost        a conversation, or an output (one Mistral's history has), that the
                caller was told was stored is missing
    foreign     a stored conversation belongs to another tenant than its caller
    diverged    the stored complete entries are not Mistral's history, in order, from
                the start (nothing half-written, nothing duplicated, nothing foreign)
    stale       the conversation's last turn was ok, yet the database holds less than
                Mistral (unless an earlier turn timed out: a slow Mistral may have
                carried it out after the last one was stored)
    incomplete  entries marked incomplete without a broken stream to explain them
    unexplained a stored conversation no caller was told of (a turn told failed, yet
                stored)

Entries the gateway stored from what it saw, because Mistral's history was not
available (ids `gwin_...`), are compared with Mistral's by type and content.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from reliability.harness import FaultStack, sse_events

__all__ = ["OUTCOMES", "Ledger", "TurnRecord", "classify", "classify_stream", "verify"]

OUTCOMES = ("ok", "unstored", "broken", "failed")
UNSTORED_COMMENT = ": gateway-stored: false"


@dataclass(frozen=True)
class TurnRecord:
    owner: str
    operation: str  # start | append | restart
    stream: bool
    outcome: str
    status: int  # 0: no HTTP answer
    conversation_id: str | None
    output_ids: tuple[str, ...] = ()
    phase: str = ""
    source_id: str | None = None  # the conversation an append or restart was sent to


def classify(answer: httpx2.Response) -> tuple[str, str | None, tuple[str, ...]]:
    """(outcome, conversation id, output ids) of a non-streamed turn's answer."""
    if answer.status_code != 200:
        return "failed", None, ()
    body = answer.json()
    outputs = tuple(str(o.get("id")) for o in body.get("outputs") or [] if isinstance(o, dict))
    outcome = "unstored" if answer.headers.get("Gateway-Stored") == "false" else "ok"
    return outcome, body.get("conversation_id"), outputs


def classify_stream(text: str, complete: bool) -> tuple[str, str | None, tuple[str, ...]]:
    """The same for a relayed event stream (`complete`: the connection ended cleanly)."""
    events = sse_events(text)
    conversation_id = None
    outputs: list[str] = []
    names = []
    for name, data in events:
        names.append(name)
        if not isinstance(data, dict):
            continue
        if name == "conversation.response.started":
            conversation_id = data.get("conversation_id")
        elif name.endswith(".delta") and data.get("id") and data["id"] not in outputs:
            outputs.append(str(data["id"]))
    done = "conversation.response.done" in names and "conversation.response.error" not in names
    if not done or not complete:
        return "broken", conversation_id, tuple(outputs)
    if UNSTORED_COMMENT in text:
        return "unstored", conversation_id, tuple(outputs)
    return "ok", conversation_id, tuple(outputs)


@dataclass
class Ledger:
    turns: list[TurnRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, turn: TurnRecord) -> None:
        with self._lock:
            self.turns.append(turn)

    def by_conversation(self) -> dict[str, list[TurnRecord]]:
        """Each conversation's turns in the order they finished (its creating turn first)."""
        found: dict[str, list[TurnRecord]] = defaultdict(list)
        with self._lock:
            for turn in self.turns:
                if turn.conversation_id:
                    found[turn.conversation_id].append(turn)
        return dict(found)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {o: sum(t.outcome == o for t in self.turns) for o in OUTCOMES}


def _key(entry: dict[str, Any]) -> tuple[str, ...]:
    return (str(entry.get("type")), json.dumps(entry.get("content"), sort_keys=True))


def _same(stored: dict[str, Any], upstream: dict[str, Any]) -> bool:
    if str(stored["id"]).startswith("gwin_"):
        return _key(stored["body"]) == _key(upstream)
    return bool(stored["id"] == upstream.get("id"))


@dataclass(frozen=True)
class _Stored:
    row: dict[str, Any] | None
    entries: list[dict[str, Any]]
    upstream: list[dict[str, Any]] | None


def _check_conversation(
    conversation_id: str, turns: list[TurnRecord], found: _Stored
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    owner = turns[0].owner
    created_by = [t for t in turns if t.operation != "append"]
    row, stored, upstream = found.row, found.entries, found.upstream
    broken = any(t.outcome == "broken" for t in turns)
    # A turn the gateway gave up on (504, or no answer) may still be carried out by a
    # slow Mistral after later turns were stored: Mistral then holds more, rightly.
    late = any(t.status in (0, 504) for t in turns)
    if row is None:
        if any(t.outcome == "ok" for t in created_by):
            problems.append(("lost", f"{conversation_id}: started ok, not stored"))
        return problems
    if row["owner_id"] != owner:
        problems.append(("foreign", f"{conversation_id}: owner {row['owner_id']} not {owner}"))
    complete = [e for e in stored if e["status"] == "complete"]
    ids = [str(e["id"]) for e in complete]
    if len(set(ids)) != len(ids):
        problems.append(("diverged", f"{conversation_id}: an entry id stored twice"))
    if any(e["status"] != "complete" for e in stored) and not broken:
        problems.append(("incomplete", f"{conversation_id}: incomplete entries, no broken turn"))
    # An output the caller saw that Mistral's history also has must be stored. (The
    # stand-in's unknown_entry fault adds an entry to the answer only: Mistral never
    # kept it, and the gateway stores the conversation as Mistral keeps it.)
    kept = {str(e.get("id")) for e in upstream or []}
    for turn in turns:
        if turn.outcome == "ok" and not (set(turn.output_ids) & kept) <= set(ids):
            problems.append(("lost", f"{conversation_id}: outputs of an ok {turn.operation}"))
    if upstream is None:
        if not broken or any(not str(e["id"]).startswith("gwin_") for e in complete):
            problems.append(("diverged", f"{conversation_id}: stored, unknown to Mistral"))
        return problems
    if len(complete) > len(upstream) or not all(
        _same(s, u) for s, u in zip(complete, upstream, strict=False)
    ):
        problems.append(("diverged", f"{conversation_id}: not a prefix of Mistral's history"))
    elif turns[-1].outcome == "ok" and len(complete) != len(upstream) and not late:
        story = ", ".join(f"{t.operation}:{t.status}:{t.outcome}" for t in turns)
        problems.append(
            ("stale", f"{conversation_id}: {len(complete)} of {len(upstream)} ({story})")
        )
    return problems


def _gather(stack: FaultStack, ids: list[str]) -> dict[str, _Stored]:
    """Rows, entries and Mistral's history of each conversation, in a few round trips."""
    rows: dict[str, dict[str, Any]] = {}
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with stack.database() as conn:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            for cid, owner in conn.run(
                "SELECT id, owner_id FROM conversations WHERE id = ANY(:ids)", ids=part
            ):
                rows[cid] = {"id": cid, "owner_id": owner}
            for cid, eid, kind, status, body in conn.run(
                "SELECT conversation_id, id, type, status, body FROM conversation_entries"
                " WHERE conversation_id = ANY(:ids) ORDER BY conversation_id, seq",
                ids=part,
            ):
                entries[cid].append({"id": eid, "type": kind, "status": status, "body": body})
    found = {}
    with httpx2.Client(
        base_url=stack.standin.url, headers={"Authorization": "Bearer check"}, timeout=10
    ) as upstream:
        for cid in ids:
            answer = upstream.get(f"/v1/conversations/{cid}/history")
            history = None if answer.status_code == 404 else answer.json()["entries"]
            found[cid] = _Stored(rows.get(cid), entries.get(cid, []), history)
    return found


def verify(stack: FaultStack, ledger: Ledger, owners: Iterable[str]) -> dict[str, list[str]]:
    """Every problem found, by kind (an empty dict: the database agrees with the callers)."""
    problems: dict[str, list[str]] = defaultdict(list)
    conversations = ledger.by_conversation()
    found = _gather(stack, sorted(conversations))
    for conversation_id, turns in conversations.items():
        for kind, message in _check_conversation(conversation_id, turns, found[conversation_id]):
            problems[kind].append(message)
    stored = stack.rows(
        "SELECT id, owner_id FROM conversations WHERE owner_id = ANY(:owners)", owners=list(owners)
    )
    for row in stored:
        if row["id"] not in conversations:
            problems["unexplained"].append(f"{row['id']} of {row['owner_id']}")
    return dict(problems)

"""Storing conversations and their entries: each turn in one statement or one transaction.

After a turn, the gateway stores the conversation exactly as Mistral holds it:
the entries of Mistral's own history (ids, timestamps and fields the gateway
does not know included), appended after the ones already stored. The turn's
prompt tokens are put on its first input entry and its completion tokens on
its last output entry, so entry sums equal usage sums. A usage event for the
request is written with them, all or nothing.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared import jsonsafe
from shared.db import Conn, Pool
from shared.errors import Conflict, NotFound
from shared.timestamps import now_rfc3339, parse_rfc3339

__all__ = [
    "OUTPUT_TYPES",
    "ConversationRef",
    "Usage",
    "stored_turn",
    "load_conversation",
    "provisional_entries",
    "entries_through",
    "UsageEvent",
    "record_turn",
    "record_usage",
    "require_agent",
    "require_entry",
    "save_turn",
]

INPUT_TYPES = frozenset({"message.input", "function.result"})
# Ids the gateway gives the inputs of a turn stored without Mistral's history.
_PROVISIONAL = "gwin_"
# What makes a provisional input and Mistral's entry for it the same input.
_SAME_INPUT = ("type", "content", "result", "tool_call_id")
OUTPUT_TYPES = frozenset({"message.output", "function.call", "tool.execution", "agent.handoff"})


@dataclass(frozen=True)
class ConversationRef:
    id: str
    agent_id: str | None
    model: str | None
    status: str


@dataclass(frozen=True)
class Usage:
    """What a call spent: tokens, and the units Mistral bills that are not tokens (OCR's
    pages, a transcription's seconds of audio). `total` is tokens only: budgets count
    tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    pages: int = 0
    audio_seconds: int = 0

    @classmethod
    def from_json(cls, usage: Any) -> Usage:
        """Mistral's `usage` (the SDK's UsageInfo): tokens and `prompt_audio_seconds`."""
        if not isinstance(usage, dict):
            return cls()
        return cls(
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")),
            audio_seconds=_int(usage.get("prompt_audio_seconds")),
        )

    @classmethod
    def of_answer(cls, answer: Any) -> Usage:
        """What a Mistral answer (or stream event) reports: its `usage`, and OCR's
        `usage_info`; none when it reports none."""
        if not isinstance(answer, dict):
            return cls()
        return cls.from_json(answer.get("usage")).with_pages(answer.get("usage_info"))

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            *(
                min(a + b, _MAX_TOKENS)
                for a, b in (
                    (self.prompt_tokens, other.prompt_tokens),
                    (self.completion_tokens, other.completion_tokens),
                    (self.pages, other.pages),
                    (self.audio_seconds, other.audio_seconds),
                )
            )
        )

    def with_pages(self, usage_info: Any) -> Usage:
        """This usage and the pages OCR's `usage_info` (the SDK's OCRUsageInfo) reports."""
        if not isinstance(usage_info, dict):
            return self
        return replace(self, pages=_int(usage_info.get("pages_processed")))

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# The usage columns are PostgreSQL integers: a larger count would make the turn unstorable.
_MAX_TOKENS = 2**31 - 1


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, _MAX_TOKENS)


@dataclass(frozen=True)
class UsageEvent:
    """One request that reached Mistral, as the usage table records it."""

    owner: str
    key_id: str
    operation: str
    status: int
    usage: Usage
    agent_id: str | None
    model: str | None
    conversation_id: str | None

    def params(self) -> dict[str, Any]:
        return {
            "u_owner": self.owner,
            # "" is no key (a batch job created before its key was recorded): NULL.
            "u_key": self.key_id or None,
            "u_op": self.operation,
            "u_agent": self.agent_id,
            "u_model": self.model,
            "u_conv": self.conversation_id,
            "u_status": self.status,
            "u_p": self.usage.prompt_tokens,
            "u_c": self.usage.completion_tokens,
            "u_pages": self.usage.pages,
            "u_audio": self.usage.audio_seconds,
        }


_USAGE_COLUMNS = (
    "INSERT INTO usage_events (owner_id, api_key_id, operation, agent_id, model,"
    " conversation_id, status, prompt_tokens, completion_tokens, pages, audio_seconds)"
)
_USAGE_VALUES = (
    ":u_owner, :u_key, :u_op, :u_agent, :u_model, :u_conv, :u_status, :u_p, :u_c,"
    " :u_pages, :u_audio"
)


def require_agent(conn: Conn, owner: str, agent_id: str) -> dict[str, Any]:
    """The owner's active agent's instructions, tools and completion_args (what a token
    reservation counts); 404 unless the owner has it (another tenant's looks exactly
    like none)."""
    row = conn.one(
        "SELECT instructions, tools, completion_args FROM agents"
        " WHERE id = :id AND owner_id = :owner AND status = 'active'",
        id=agent_id,
        owner=owner,
    )
    if row is None:
        raise NotFound.of("Agent", agent_id)
    return row


def entries_through(
    conn: Conn, owner: str, conversation_id: str, entry_id: str
) -> list[dict[str, Any]]:
    """The stored entries of the owner's conversation up to and including `entry_id`, in
    order, as stored; none if the gateway does not hold that entry."""
    rows = conn.all(
        "SELECT body FROM conversation_entries WHERE conversation_id = :c AND owner_id = :owner"
        " AND seq <= (SELECT seq FROM conversation_entries WHERE conversation_id = :c"
        "   AND owner_id = :owner AND id = :e)"
        " ORDER BY seq",
        c=conversation_id,
        owner=owner,
        e=entry_id,
    )
    return [dict(row["body"]) for row in rows]


def require_entry(conn: Conn, owner: str, conversation_id: str, entry_id: str) -> None:
    """404 unless the entry is one of this conversation's (another tenant's entry, or
    another conversation's, looks exactly like none). When the gateway's copy holds
    provisional entries (Mistral's history was unavailable), it cannot tell: Mistral
    decides, as it would for any id."""
    row = conn.one(
        "SELECT EXISTS (SELECT 1 FROM conversation_entries WHERE conversation_id = :c"
        "   AND owner_id = :owner AND id = :e) AS found,"
        " EXISTS (SELECT 1 FROM conversation_entries WHERE conversation_id = :c"
        "   AND owner_id = :owner AND starts_with(id, :provisional)) AS partial",
        c=conversation_id,
        owner=owner,
        e=entry_id,
        provisional=_PROVISIONAL,
    )
    if row is not None and not row["found"] and not row["partial"]:
        raise NotFound(f"entry {entry_id} not found")


def load_conversation(conn: Conn, owner: str, conversation_id: str) -> ConversationRef:
    """The owner's conversation, or 404; archived ones are read-only (409)."""
    row = conn.one(
        "SELECT id, agent_id, model, status FROM conversations"
        " WHERE id = :id AND owner_id = :owner AND status <> 'deleted'",
        id=conversation_id,
        owner=owner,
    )
    if row is None:
        raise NotFound.of("Conversation", conversation_id)
    if row["status"] == "archived":
        raise Conflict(
            f"Conversation {conversation_id!r} is archived; unarchive it to continue",
            code="conversation_archived",
        )
    return ConversationRef(**row)


def stored_turn(
    conn: Conn, owner: str, conversation_id: str, *, first: bool = False
) -> tuple[list[Any], Usage]:
    """The stored outputs of a conversation's last turn (after its last input), or of its
    first (up to its second input), and that turn's tokens."""
    rows = conn.all(
        "SELECT type, body, prompt_tokens, completion_tokens FROM conversation_entries"
        " WHERE conversation_id = :id AND owner_id = :owner ORDER BY seq",
        id=conversation_id,
        owner=owner,
    )
    inputs = [i for i, r in enumerate(rows) if r["type"] in INPUT_TYPES]
    if first:
        ends = [i for i in inputs if any(r["type"] not in INPUT_TYPES for r in rows[:i])]
        turn = rows[: ends[0]] if ends else rows
    else:
        turn = rows[max(inputs[-1] if inputs else 0, 0) :]
    outputs = [
        json.loads(r["body"]) if isinstance(r["body"], str) else r["body"]
        for r in turn
        if r["type"] not in INPUT_TYPES
    ]
    usage = Usage(
        sum(int(r["prompt_tokens"]) for r in turn), sum(int(r["completion_tokens"]) for r in turn)
    )
    return outputs, usage


def _text(content: Any) -> tuple[str | None, Any]:
    """(plain text, chunks) for an entry's content or result: one of them, or neither."""
    if isinstance(content, str):
        return content, None
    return None, content


def provisional_entries(
    inputs: Any, outputs: Sequence[dict[str, Any]], *, status: str = "complete"
) -> list[dict[str, Any]]:
    """Entries built from what the gateway saw, for when Mistral's history is unavailable.

    Inputs get gateway ids (`gwin_...`); outputs keep Mistral's. A turn that did not
    finish (`status` "incomplete") has its inputs marked too (Mistral may not have kept
    them); a later turn whose history holds them gives them Mistral's ids and marks them
    complete (`_adopt_provisional`), and its outputs are replaced by Mistral's whole ones.
    """
    now = now_rfc3339()
    entries: list[dict[str, Any]] = []
    items = [{"role": "user", "content": inputs}] if isinstance(inputs, str) else inputs or []
    for item in items:
        if not isinstance(item, dict):
            continue
        entry = {"object": "entry", "type": item.get("type", "message.input"), **item}
        entry.setdefault("id", _PROVISIONAL + secrets.token_hex(12))
        entry.setdefault("created_at", now)
        entries.append(entry if status == "complete" else {**entry, "_gateway_status": status})
    entries.extend({**o, "_gateway_status": status} if status != "complete" else o for o in outputs)
    return entries


def save_turn(
    pool: Pool,
    *,
    event: UsageEvent,
    entries: Sequence[dict[str, Any]] = (),
    new: dict[str, Any] | None = None,
    parent: tuple[str, str] | None = None,
    incomplete_ids: frozenset[str] = frozenset(),
    stores: bool = True,
) -> None:
    """Store a turn and its usage event atomically, in as few round trips as it takes.

    A turn that created its conversation (`new`: a start or a restart) is one statement:
    conversation, entries and usage event together, no transaction to open or commit.
    If the conversation was already stored (a repeated store of the same turn), that
    statement writes nothing and the turn goes the way of an append: one transaction
    that locks the conversation and adds the entries it does not hold yet.
    """
    assert event.conversation_id is not None
    if not stores:
        with pool.connection() as conn:
            record_usage(conn, event)
        return
    if new is not None:
        with pool.connection() as conn:
            if _create_with_turn(conn, event, entries, new, parent, incomplete_ids):
                return
    with pool.transaction() as conn:
        record_turn(
            conn,
            owner=event.owner,
            conversation_id=event.conversation_id,
            entries=entries,
            usage=event.usage,
            incomplete_ids=incomplete_ids,
            event=event,
        )


def record_turn(
    conn: Conn,
    *,
    owner: str,
    conversation_id: str,
    entries: Sequence[dict[str, Any]],
    usage: Usage,
    incomplete_ids: frozenset[str] = frozenset(),
    event: UsageEvent | None = None,
) -> None:
    """Store a turn of a stored conversation inside the caller's transaction.

    `entries` is the conversation's whole history as Mistral has it (or the provisional
    entries of this turn); only unseen ones are inserted, with `event` (if given) in the
    same statement.
    """
    # Lock the conversation so concurrent turns append in order.
    locked = conn.one(
        "SELECT id FROM conversations WHERE id = :id AND owner_id = :owner FOR UPDATE",
        id=conversation_id,
        owner=owner,
    )
    if locked is None:
        raise NotFound.of("Conversation", conversation_id)
    stored = {
        str(r[0]): str(r[1])
        for r in conn.run(
            "SELECT id, status FROM conversation_entries WHERE conversation_id = :id",
            id=conversation_id,
        )
    }
    known = set(stored)
    fresh = [e for e in entries if str(e.get("id")) not in known]
    # An entry stored incomplete (a stream cut, or abandoned past its bound) that
    # Mistral's history now holds whole is replaced, not skipped for its known id.
    _complete_stored(
        conn,
        conversation_id,
        [
            e
            for e in entries
            if stored.get(str(e.get("id"))) == "incomplete"
            and "_gateway_status" not in e
            and str(e.get("id")) not in incomplete_ids
        ],
    )
    if any(k.startswith(_PROVISIONAL) for k in known):
        fresh = _adopt_provisional(conn, conversation_id, fresh)
    _attribute_tokens(fresh, usage)
    values = [
        _entry_values(seq, entry, incomplete_ids)
        for seq, entry in enumerate(fresh, start=len(known))
    ]
    touch = "UPDATE conversations SET updated_at = greatest(updated_at, now()) WHERE id = :conv"
    parts = [f"touched AS ({touch})"] if fresh else []
    if event is not None:
        parts.append(f"used AS ({_USAGE_COLUMNS} VALUES ({_USAGE_VALUES}))")
    if parts or values:
        sql = (f"WITH {', '.join(parts)} " if parts else "") + (
            _entries_insert() if values else "SELECT 1"
        )
        conn.run(
            sql, conv=conversation_id, **_entries_params(owner, values), **_event_params(event)
        )


def _complete_stored(conn: Conn, conversation_id: str, entries: list[dict[str, Any]]) -> None:
    """Replace stored incomplete entries by Mistral's whole ones (seq and tokens kept)."""
    for entry in entries:
        values = _entry_values(0, dict(entry), frozenset())
        conn.run(
            "UPDATE conversation_entries SET body = CAST(:body AS jsonb), content = :content,"
            " content_json = CAST(:content_json AS jsonb), status = :status,"
            " completed_at = :completed_at"
            " WHERE conversation_id = :conv AND id = :id AND status = 'incomplete'",
            conv=conversation_id,
            id=values["id"],
            body=json.dumps(values["body"]),
            content=values["content"],
            content_json=None
            if values["content_json"] is None
            else json.dumps(values["content_json"]),
            status=values["status"],
            completed_at=values["completed_at"],
        )


def _create_with_turn(
    conn: Conn,
    event: UsageEvent,
    entries: Sequence[dict[str, Any]],
    new: dict[str, Any],
    parent: tuple[str, str] | None,
    incomplete_ids: frozenset[str],
) -> bool:
    """A new conversation, its entries and the usage event in one statement.

    False, having written nothing, if the conversation is already stored. The entries'
    references to the conversation are checked at the end of the statement, when the
    conversation row inserted alongside them exists.
    """
    assert event.conversation_id is not None
    fresh = [dict(e) for e in entries]
    _attribute_tokens(fresh, event.usage)
    values = [_entry_values(seq, entry, incomplete_ids) for seq, entry in enumerate(fresh)]
    insert, params = _conversation_insert(
        event.owner, event.key_id, event.conversation_id, new, entries, parent
    )
    parts = [
        f"conv AS ({insert} RETURNING id)",
        f"used AS ({_USAGE_COLUMNS} SELECT {_USAGE_VALUES} WHERE EXISTS (SELECT 1 FROM conv))",  # noqa: S608 (constants; values are parameters)
    ]
    if values:
        parts.append(f"added AS ({_entries_insert(guarded=True)})")
    row = conn.one(
        f"WITH {', '.join(parts)} SELECT count(*) AS created FROM conv",  # noqa: S608
        **params,
        **_entries_params(event.owner, values),
        **event.params(),
    )
    return bool(row and row["created"])


def _adopt_provisional(
    conn: Conn, conversation_id: str, fresh: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Give stored provisional inputs the ids and bodies of Mistral's entries for them.

    A turn stored while Mistral's history was unreadable has inputs with gateway ids;
    the next turn's history holds the same inputs under Mistral's ids. Without this they
    would be stored twice. The stored row keeps its place and tokens. Returns the
    entries still to insert.
    """
    mistral_inputs = [
        e
        for e in fresh
        if e.get("type") in INPUT_TYPES and not str(e.get("id")).startswith(_PROVISIONAL)
    ]
    if not mistral_inputs:
        return fresh
    provisional = conn.all(
        "SELECT seq, body FROM conversation_entries WHERE conversation_id = :id"
        " AND starts_with(id, :prefix) AND status IN ('complete', 'incomplete') ORDER BY seq",
        id=conversation_id,
        prefix=_PROVISIONAL,
    )
    remaining = []
    for entry in fresh:
        match = None
        if any(entry is m for m in mistral_inputs):
            wanted = [entry.get(k) for k in _SAME_INPUT]
            match = next(
                (p for p in provisional if [p["body"].get(k) for k in _SAME_INPUT] == wanted),
                None,
            )
        if match is None:
            remaining.append(entry)
            continue
        provisional.remove(match)
        body, changed = jsonsafe.storable(entry)
        conn.run(
            "UPDATE conversation_entries SET id = :new_id, body = CAST(:body AS jsonb),"
            " created_at = coalesce(:created, created_at), status = :status"
            " WHERE conversation_id = :conv AND seq = :seq",
            new_id=str(body["id"]),
            body=json.dumps(body),
            status="unstorable" if changed else "complete",
            created=parse_rfc3339(entry.get("created_at")),
            conv=conversation_id,
            seq=match["seq"],
        )
    return remaining


def _attribute_tokens(fresh: list[dict[str, Any]], usage: Usage) -> None:
    inputs = [e for e in fresh if e.get("type") in INPUT_TYPES]
    outputs = [e for e in fresh if e.get("type") in OUTPUT_TYPES]
    for entry in fresh:
        entry["_tokens"] = (0, 0)
    if inputs:
        inputs[0]["_tokens"] = (usage.prompt_tokens, 0)
    if outputs:
        p, _ = outputs[-1]["_tokens"]
        outputs[-1]["_tokens"] = (p, usage.completion_tokens)
    elif inputs:
        inputs[0]["_tokens"] = (usage.prompt_tokens, usage.completion_tokens)


def _conversation_insert(
    owner: str,
    key_id: str,
    conversation_id: str,
    new: dict[str, Any],
    entries: Sequence[dict[str, Any]],
    parent: tuple[str, str] | None,
) -> tuple[str, dict[str, Any]]:
    """The INSERT of a conversation a turn created (nothing if it exists), and its values."""
    new, _ = jsonsafe.storable(new)
    times = [t for e in entries if (t := parse_rfc3339(e.get("created_at"))) is not None]
    created = min(times) if times else datetime.now(UTC)
    agent_version = new.get("agent_version")

    def as_json(name: str) -> str | None:
        value = new.get(name)
        return None if value is None else json.dumps(value)

    sql = (
        "INSERT INTO conversations (id, owner_id, api_key_id, agent_id, agent_version, model,"
        " name, description, metadata, instructions, tools, completion_args, guardrails,"
        " parent_conversation_id, parent_entry_id, created_at, updated_at)"
        # No version given: the agent's current one, which is the one Mistral ran.
        " VALUES (:c_id, :c_owner, :c_key, :c_agent, COALESCE(CAST(:c_version AS text),"
        " (SELECT a.version::text FROM agents a WHERE a.id = :c_agent AND a.owner_id = :c_owner)),"
        " :c_model, :c_name,"
        " :c_description, CAST(:c_metadata AS jsonb), :c_instructions, CAST(:c_tools AS jsonb),"
        " CAST(:c_args AS jsonb), CAST(:c_guardrails AS jsonb), :c_parent, :c_parent_entry,"
        " :c_created, greatest(CAST(:c_created AS timestamptz), now()))"
        " ON CONFLICT (id) DO NOTHING"
    )
    return sql, {
        "c_id": conversation_id,
        "c_owner": owner,
        "c_key": key_id,
        "c_agent": new.get("agent_id"),
        "c_version": None if agent_version is None else str(agent_version),
        "c_model": new.get("model"),
        "c_name": new.get("name"),
        "c_description": new.get("description"),
        "c_metadata": as_json("metadata"),
        "c_instructions": new.get("instructions"),
        "c_tools": as_json("tools"),
        "c_args": as_json("completion_args"),
        "c_guardrails": as_json("guardrails"),
        "c_parent": parent[0] if parent else None,
        "c_parent_entry": parent[1] if parent else None,
        "c_created": created,
    }


# The entries of one statement go as one JSON array, read by `jsonb_to_recordset` with
# each column's type spelled out: one parameter however many entries (pg8000 converts
# every parameter in Python; one statement text, prepared once per connection).
_ENTRY_COLUMNS = (
    ("seq", "integer"),
    ("id", "text"),
    ("type", "text"),
    ("role", "text"),
    ("content", "text"),
    ("content_json", "jsonb"),
    ("body", "jsonb"),
    ("prompt_tokens", "integer"),
    ("completion_tokens", "integer"),
    ("agent_id", "text"),
    ("model", "text"),
    ("tool_name", "text"),
    ("tool_call_id", "text"),
    ("status", "text"),
    ("created_at", "timestamptz"),
    ("completed_at", "timestamptz"),
)


@functools.lru_cache(maxsize=4)
def _entries_insert(*, guarded: bool = False) -> str:
    """One INSERT of the entries in `:entries` (a JSON array of `_entry_values` rows) of
    the conversation `:conv` (owner `:e_owner`).

    `guarded` inserts them only if the sibling `conv` clause created the conversation.
    """
    names = ", ".join(name for name, _ in _ENTRY_COLUMNS)
    typed = ", ".join(f"{name} {kind}" for name, kind in _ENTRY_COLUMNS)
    source = f"jsonb_to_recordset(CAST(:entries AS jsonb)) AS v ({typed})"
    conversation = "(SELECT id FROM conv)" if guarded else ":conv"
    # Built from the constant column table only; the values are one parameter.
    guard = " WHERE EXISTS (SELECT 1 FROM conv)" if guarded else ""
    insert = f"INSERT INTO conversation_entries (conversation_id, owner_id, {names})"
    select = f" SELECT {conversation}, :e_owner, {names} FROM {source}"  # noqa: S608
    return insert + select + guard + " ON CONFLICT DO NOTHING"


def _entry_values(
    seq: int, entry: dict[str, Any], incomplete_ids: frozenset[str]
) -> dict[str, Any]:
    """One entry's column values (the entry loses its gateway-only `_` keys).

    What PostgreSQL cannot hold (a NaN, a NUL, a lone surrogate) is replaced and the
    entry marked `unstorable`: one odd value must not stop the conversation being stored.
    """
    prompt, completion = entry.pop("_tokens", (0, 0))
    marked = entry.pop("_gateway_status", None)
    entry, unstorable = jsonsafe.storable(entry)
    kind = str(entry.get("type", "message.output"))
    content = entry.get("result") if kind == "function.result" else entry.get("content")
    text, chunks = _text(content)
    entry_id = str(entry.get("id") or "gw_" + secrets.token_hex(12))
    return {
        "seq": seq,
        "id": entry_id,
        "type": kind,
        "role": entry.get("role"),
        "content": text,
        "content_json": chunks,
        "body": entry,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "agent_id": entry.get("agent_id"),
        "model": entry.get("model"),
        "tool_name": entry.get("name"),
        "tool_call_id": entry.get("tool_call_id"),
        "status": (
            "unstorable"
            if unstorable
            else "incomplete"
            if marked or entry_id in incomplete_ids
            else "complete"
        ),
        "created_at": _iso(parse_rfc3339(entry.get("created_at")) or datetime.now(UTC)),
        "completed_at": _iso(parse_rfc3339(entry.get("completed_at"))),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _entries_params(owner: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of `_entries_insert`: the owner and the rows as one JSON array."""
    return {"e_owner": owner, "entries": json.dumps(values)} if values else {}


def _event_params(event: UsageEvent | None) -> dict[str, Any]:
    return {} if event is None else event.params()


def record_usage(conn: Conn, event: UsageEvent) -> None:
    """A usage event on its own (a turn Mistral was not asked to keep)."""
    conn.run(f"{_USAGE_COLUMNS} VALUES ({_USAGE_VALUES})", **event.params())

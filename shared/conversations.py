"""Storing conversations and their entries: one transaction per turn.

After a turn, the gateway stores the conversation exactly as Mistral holds it:
the entries of Mistral's own history (ids, timestamps and fields the gateway
does not know included), appended after the ones already stored. The turn's
prompt tokens are put on its first input entry and its completion tokens on
its last output entry, so entry sums equal usage sums. A usage event for the
request is appended in the same transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.db import Conn
from shared.errors import Conflict, NotFound
from shared.timestamps import now_rfc3339, parse_rfc3339

__all__ = [
    "OUTPUT_TYPES",
    "ConversationRef",
    "Usage",
    "load_conversation",
    "provisional_entries",
    "record_turn",
    "record_usage",
    "require_agent",
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
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_json(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        return cls(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def require_agent(conn: Conn, owner: str, agent_id: str) -> None:
    """404 unless the owner has this agent (another tenant's looks exactly like none)."""
    row = conn.one(
        "SELECT 1 AS found FROM agents WHERE id = :id AND owner_id = :owner AND status = 'active'",
        id=agent_id,
        owner=owner,
    )
    if row is None:
        raise NotFound(f"agent {agent_id} not found")


def load_conversation(conn: Conn, owner: str, conversation_id: str) -> ConversationRef:
    """The owner's conversation, or 404; archived ones are read-only (409)."""
    row = conn.one(
        "SELECT id, agent_id, model, status FROM conversations"
        " WHERE id = :id AND owner_id = :owner AND status <> 'deleted'",
        id=conversation_id,
        owner=owner,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    if row["status"] == "archived":
        raise Conflict(f"conversation {conversation_id} is archived; unarchive it to continue")
    return ConversationRef(**row)


def _text(content: Any) -> tuple[str | None, str | None]:
    """(plain text, JSON of chunks) for an entry's content or result."""
    if isinstance(content, str):
        return content, None
    if content is None:
        return None, None
    return None, json.dumps(content)


def provisional_entries(
    inputs: Any, outputs: Sequence[dict[str, Any]], *, status: str = "complete"
) -> list[dict[str, Any]]:
    """Entries built from what the gateway saw, for when Mistral's history is unavailable.

    Inputs get gateway ids (`gwin_...`); outputs keep Mistral's. A turn that did not
    finish (`status` "incomplete") has its inputs marked too: Mistral may not have
    kept them, so a later turn must not take them for its own (`_adopt_provisional`).
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


def record_turn(
    conn: Conn,
    *,
    owner: str,
    key_id: str,
    conversation_id: str,
    entries: Sequence[dict[str, Any]],
    usage: Usage,
    new: dict[str, Any] | None = None,
    parent: tuple[str, str] | None = None,
    incomplete_ids: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Store a turn. `entries` is the conversation's whole history as Mistral has it
    (or the provisional entries of this turn); only unseen ones are inserted.

    `new` holds the request fields of a conversation this turn created (start or
    restart). Returns the entries inserted.
    """
    if new is not None:
        _insert_conversation(conn, owner, key_id, conversation_id, new, entries, parent)
    # Lock the conversation so concurrent turns append in order.
    locked = conn.one(
        "SELECT id FROM conversations WHERE id = :id AND owner_id = :owner FOR UPDATE",
        id=conversation_id,
        owner=owner,
    )
    if locked is None:
        raise NotFound(f"conversation {conversation_id} not found")
    known = {
        r[0]
        for r in conn.run(
            "SELECT id FROM conversation_entries WHERE conversation_id = :id", id=conversation_id
        )
    }
    base = len(known)
    fresh = [e for e in entries if str(e.get("id")) not in known]
    fresh = _adopt_provisional(conn, conversation_id, fresh)
    _attribute_tokens(fresh, usage)
    seq = base
    for entry in fresh:
        _insert_entry(conn, owner, conversation_id, seq, entry, incomplete_ids)
        seq += 1
    if fresh:
        conn.run(
            "UPDATE conversations SET updated_at = greatest(updated_at, now()) WHERE id = :id",
            id=conversation_id,
        )
    return fresh


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
        " AND starts_with(id, :prefix) AND status = 'complete' ORDER BY seq",
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
        conn.run(
            "UPDATE conversation_entries SET id = :new_id, body = CAST(:body AS jsonb),"
            " created_at = coalesce(:created, created_at)"
            " WHERE conversation_id = :conv AND seq = :seq",
            new_id=str(entry["id"]),
            body=json.dumps(entry),
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


def _insert_conversation(
    conn: Conn,
    owner: str,
    key_id: str,
    conversation_id: str,
    new: dict[str, Any],
    entries: Sequence[dict[str, Any]],
    parent: tuple[str, str] | None,
) -> None:
    times = [t for e in entries if (t := parse_rfc3339(e.get("created_at"))) is not None]
    created = min(times) if times else datetime.now(UTC)
    agent_version = new.get("agent_version")

    def as_json(name: str) -> str | None:
        value = new.get(name)
        return None if value is None else json.dumps(value)

    conn.run(
        "INSERT INTO conversations (id, owner_id, api_key_id, agent_id, agent_version, model,"
        " name, description, metadata, instructions, tools, completion_args, guardrails,"
        " parent_conversation_id, parent_entry_id, created_at, updated_at)"
        " VALUES (:id, :owner, :key, :agent, :version, :model, :name, :description,"
        " CAST(:metadata AS jsonb), :instructions, CAST(:tools AS jsonb),"
        " CAST(:args AS jsonb), CAST(:guardrails AS jsonb), :parent, :parent_entry,"
        " :created, :created)"
        " ON CONFLICT (id) DO NOTHING",
        id=conversation_id,
        owner=owner,
        key=key_id,
        agent=new.get("agent_id"),
        version=None if agent_version is None else str(agent_version),
        model=new.get("model"),
        name=new.get("name"),
        description=new.get("description"),
        metadata=as_json("metadata"),
        instructions=new.get("instructions"),
        tools=as_json("tools"),
        args=as_json("completion_args"),
        guardrails=as_json("guardrails"),
        parent=parent[0] if parent else None,
        parent_entry=parent[1] if parent else None,
        created=created,
    )


def _insert_entry(
    conn: Conn,
    owner: str,
    conversation_id: str,
    seq: int,
    entry: dict[str, Any],
    incomplete_ids: frozenset[str],
) -> None:
    prompt, completion = entry.pop("_tokens", (0, 0))
    marked = entry.pop("_gateway_status", None)
    kind = str(entry.get("type", "message.output"))
    content = entry.get("result") if kind == "function.result" else entry.get("content")
    text, chunks = _text(content)
    entry_id = str(entry.get("id") or "gw_" + secrets.token_hex(12))
    status = "incomplete" if marked or entry_id in incomplete_ids else "complete"
    conn.run(
        "INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type, role,"
        " content, content_json, body, prompt_tokens, completion_tokens, agent_id, model,"
        " tool_name, tool_call_id, status, created_at, completed_at)"
        " VALUES (:conv, :seq, :id, :owner, :type, :role, :content, CAST(:chunks AS jsonb),"
        " CAST(:body AS jsonb), :prompt, :completion, :agent, :model, :tool, :call,"
        " :status, :created, :completed)"
        " ON CONFLICT DO NOTHING",
        conv=conversation_id,
        seq=seq,
        id=entry_id,
        owner=owner,
        type=kind,
        role=entry.get("role"),
        content=text,
        chunks=chunks,
        body=json.dumps(entry),
        prompt=prompt,
        completion=completion,
        agent=entry.get("agent_id"),
        model=entry.get("model"),
        tool=entry.get("name"),
        call=entry.get("tool_call_id"),
        status=status,
        created=parse_rfc3339(entry.get("created_at")) or datetime.now(UTC),
        completed=parse_rfc3339(entry.get("completed_at")),
    )


def record_usage(
    conn: Conn,
    *,
    owner: str,
    key_id: str,
    operation: str,
    status: int,
    usage: Usage,
    agent_id: str | None,
    model: str | None,
    conversation_id: str | None,
) -> None:
    conn.run(
        "INSERT INTO usage_events (owner_id, api_key_id, operation, agent_id, model,"
        " conversation_id, status, prompt_tokens, completion_tokens)"
        " VALUES (:owner, :key, :op, :agent, :model, :conv, :status, :p, :c)",
        owner=owner,
        key=key_id,
        op=operation,
        agent=agent_id,
        model=model,
        conv=conversation_id,
        status=status,
        p=usage.prompt_tokens,
        c=usage.completion_tokens,
    )

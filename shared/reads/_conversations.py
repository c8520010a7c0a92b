"""Conversations and their entries, read from the gateway's own tables.

Every query is scoped to the caller's tenant and skips deleted conversations,
so another tenant's conversation and a missing one look the same: 404.
Each one is served by an index (see tests/functional/test_history_indexes.py):

    list (Mistral, page numbers)   conversations_owner_keyset (or the metadata GIN index)
    list (gateway, keyset)         conversations_owner_keyset / _owner_agent / _owner_model /
                                   _owner_archived (0002), or the metadata GIN index
    get, and the tenant check      conversations_pkey
    history, messages, entries     conversation_entries_pkey (conversation_id, seq)

Optional filters are written `(CAST(:x AS type) IS NULL OR column = :x)`: the
statements are unnamed, so PostgreSQL plans each one with its actual values
and folds an absent filter away before choosing an index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.db import Conn
from shared.errors import NotFound
from shared.reads import _shapes
from shared.reads._query import (
    CONVERSATIONS_CURSOR,
    ENTRIES_CURSOR,
    ConversationsQuery,
    EntriesQuery,
    MistralListQuery,
)

__all__ = [
    "conversation",
    "conversation_entries",
    "conversation_history",
    "conversation_messages",
    "conversation_page",
    "conversation_records",
]

_MISTRAL_LIST = """
SELECT id, agent_id, agent_version, model, name, description, metadata,
       instructions, tools, completion_args, guardrails, status, created_at, updated_at
FROM conversations
WHERE owner_id = :owner
  AND status <> 'deleted'
  AND (CAST(:metadata AS jsonb) IS NULL OR metadata @> CAST(:metadata AS jsonb))
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset
"""

_GATEWAY_LIST = """
SELECT id, agent_id, agent_version, model, name, description, metadata,
       instructions, tools, completion_args, guardrails, status, created_at, updated_at
FROM conversations
WHERE owner_id = :owner
  AND status <> 'deleted'
  AND (CAST(:agent_id AS text) IS NULL OR agent_id = :agent_id)
  AND (CAST(:model AS text) IS NULL OR model = :model)
  AND (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:created_after AS timestamptz) IS NULL OR created_at > :created_after)
  AND (CAST(:created_before AS timestamptz) IS NULL OR created_at < :created_before)
  AND (CAST(:metadata AS jsonb) IS NULL OR metadata @> CAST(:metadata AS jsonb))
  AND (CAST(:after_created_at AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(:after_created_at AS timestamptz), CAST(:after_id AS text)))
ORDER BY created_at DESC, id DESC
LIMIT :limit
"""

_ONE = """
SELECT id, agent_id, agent_version, model, name, description, metadata,
       instructions, tools, completion_args, guardrails, status, created_at, updated_at
FROM conversations
WHERE id = :conversation_id AND owner_id = :owner AND status <> 'deleted'
"""

_EXISTS = """
SELECT 1 AS found
FROM conversations
WHERE id = :conversation_id AND owner_id = :owner AND status <> 'deleted'
"""

# The owner is checked on the conversation first; repeating it on the entries costs
# nothing and keeps a tenant's entries out of reach even if that check were skipped.
_HISTORY = """
SELECT body
FROM conversation_entries
WHERE conversation_id = :conversation_id AND owner_id = :owner
ORDER BY seq
"""

_MESSAGES = """
SELECT body
FROM conversation_entries
WHERE conversation_id = :conversation_id AND owner_id = :owner
  AND type IN ('message.input', 'message.output')
ORDER BY seq
"""

_ENTRIES = """
SELECT seq, id, type, status, prompt_tokens, completion_tokens, created_at, body
FROM conversation_entries
WHERE conversation_id = :conversation_id AND owner_id = :owner AND seq > :after_seq
ORDER BY seq
LIMIT :limit
"""


def conversation_records(conn: Conn, owner: str, query: MistralListQuery) -> list[dict[str, Any]]:
    """Mistral's list: a JSON array of records, newest first, by page number.

    OFFSET only here, because the SDK pages by number; it still walks the owner's
    keyset index, never the table.
    """
    rows = conn.all(
        _MISTRAL_LIST,
        owner=owner,
        metadata=query.metadata,
        limit=query.page_size,
        offset=query.page * query.page_size,
    )
    return [_shapes.conversation_record(r) for r in rows]


def conversation_page(conn: Conn, owner: str, query: ConversationsQuery) -> dict[str, Any]:
    """The gateway's list: filtered, newest first, with an opaque keyset cursor."""
    after_created_at, after_id = query.after or (None, None)
    rows = conn.all(
        _GATEWAY_LIST,
        owner=owner,
        agent_id=query.agent_id,
        model=query.model,
        status=query.status,
        created_after=query.created_after,
        created_before=query.created_before,
        metadata=query.metadata,
        after_created_at=after_created_at,
        after_id=after_id,
        limit=query.limit + 1,
    )
    return _shapes.page(rows, query.limit, _gateway_record, _created_position, CONVERSATIONS_CURSOR)


def _gateway_record(row: dict[str, Any]) -> dict[str, Any]:
    return {**_shapes.conversation_record(row), "status": row["status"]}


def _created_position(row: dict[str, Any]) -> tuple[datetime, str]:
    return row["created_at"], row["id"]


def conversation(conn: Conn, owner: str, conversation_id: str) -> dict[str, Any]:
    """Mistral's record of one conversation."""
    row = conn.one(_ONE, conversation_id=conversation_id, owner=owner)
    if row is None:
        raise _not_found(conversation_id)
    return _shapes.conversation_record(row)


def conversation_history(conn: Conn, owner: str, conversation_id: str) -> dict[str, Any]:
    """Mistral's `ConversationHistory`: every entry, in order, as Mistral returned it."""
    return {
        "object": "conversation.history",
        "conversation_id": conversation_id,
        "entries": _bodies(conn, _HISTORY, owner, conversation_id),
    }


def conversation_messages(conn: Conn, owner: str, conversation_id: str) -> dict[str, Any]:
    """Mistral's `ConversationMessages`: the message entries of the history, in order."""
    return {
        "object": "conversation.messages",
        "conversation_id": conversation_id,
        "messages": _bodies(conn, _MESSAGES, owner, conversation_id),
    }


def conversation_entries(
    conn: Conn, owner: str, conversation_id: str, query: EntriesQuery
) -> dict[str, Any]:
    """The gateway's entries page: entries in history order with usage and status."""
    _check_visible(conn, owner, conversation_id)
    after_seq = -1 if query.after is None else query.after
    rows = conn.all(
        _ENTRIES,
        conversation_id=conversation_id,
        owner=owner,
        after_seq=after_seq,
        limit=query.limit + 1,
    )
    return _shapes.page(rows, query.limit, _shapes.entry, _seq_position, ENTRIES_CURSOR)


def _seq_position(row: dict[str, Any]) -> tuple[int]:
    return (row["seq"],)


def _bodies(conn: Conn, sql: str, owner: str, conversation_id: str) -> list[Any]:
    _check_visible(conn, owner, conversation_id)
    return [body for (body,) in conn.run(sql, conversation_id=conversation_id, owner=owner)]


def _check_visible(conn: Conn, owner: str, conversation_id: str) -> None:
    if conn.one(_EXISTS, conversation_id=conversation_id, owner=owner) is None:
        raise _not_found(conversation_id)


def _not_found(conversation_id: str) -> NotFound:
    return NotFound.of("Conversation", conversation_id)

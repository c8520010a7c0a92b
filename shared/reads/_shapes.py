"""Rows as the wire shapes callers read: Mistral's for `/v1`, the gateway's for `/gateway/v1`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared import cursors
from shared.timestamps import rfc3339

__all__ = [
    "batch",
    "batch_item",
    "conversation_record",
    "entry",
    "page",
]


def _agent_version(stored: str | None) -> int | str | None:
    # Stored as text (an alias is a name), but Mistral answers version numbers as integers.
    if stored is not None and stored.isascii() and stored.isdigit():
        return int(stored)
    return stored


def conversation_record(row: dict[str, Any]) -> dict[str, Any]:
    """Mistral's conversation record (wire contract 6.4): agent-shaped or model-shaped.

    The two shapes are an untagged union in the SDK: an agent conversation must not
    carry `model`, or it could be parsed as a model conversation.
    """
    record: dict[str, Any] = {
        "object": "conversation",
        "id": row["id"],
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "name": row["name"],
        "description": row["description"],
        "metadata": row["metadata"],
    }
    if row["agent_id"] is not None:
        record["agent_id"] = row["agent_id"]
        record["agent_version"] = _agent_version(row["agent_version"])
    else:
        record["model"] = row["model"]
        record["instructions"] = row["instructions"]
        record["tools"] = row["tools"]
        record["completion_args"] = row["completion_args"]
        record["guardrails"] = row["guardrails"]
    return record


def entry(row: dict[str, Any]) -> dict[str, Any]:
    """One stored entry with what the gateway knows about it; `entry` is Mistral's, verbatim."""
    return {
        "object": "conversation.entry",
        "seq": row["seq"],
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "created_at": rfc3339(row["created_at"]),
        "entry": row["body"],
    }


def batch(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "batch",
        "id": row["id"],
        "status": row["status"],
        "item_count": row["item_count"],
        "message_id": row["message_id"],
        "error": row["error"],
        "published_at": rfc3339(row["published_at"]),
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
    }


def batch_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "batch.item",
        "batch_id": row["batch_id"],
        "index": row["idx"],
        "custom_id": row["custom_id"],
        "status": row["status"],
        "conversation_id": row["conversation_id"],
        "result": row["result"],
        "error": row["error"],
        "attempts": row["attempts"],
        "started_at": rfc3339(row["started_at"]),
        "finished_at": rfc3339(row["finished_at"]),
    }


def page(
    rows: Sequence[dict[str, Any]],
    limit: int,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
    position: Callable[[dict[str, Any]], tuple[cursors.CursorValue, ...]],
    kind: str,
) -> dict[str, Any]:
    """A gateway list page from up to `limit + 1` rows: the extra row only says there is more."""
    more = len(rows) > limit
    shown = rows[:limit]
    next_cursor = cursors.encode(kind, *position(shown[-1])) if more else None
    return {"object": "list", "data": [shape(r) for r in shown], "next_cursor": next_cursor}


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.reads._query import BATCH_ITEM_STATUSES, CONVERSATION_STATUSES
    from shared.shapes import INT, STRING, TIME, const, enum, nullable, obj, page, ref

    gateway_conversation = {
        "allOf": [
            ref("Conversation"),
            obj({"status": enum(*CONVERSATION_STATUSES)}, ("status",)),
        ],
    }
    stored_entry = obj(
        {
            "object": const("conversation.entry"),
            "seq": {"type": "integer", "minimum": 0},
            "id": STRING,
            "type": STRING,
            "status": enum("complete", "incomplete", "unstorable"),
            "prompt_tokens": INT,
            "completion_tokens": INT,
            "created_at": TIME,
            "entry": ref("Entry"),
        },
        (
            "object",
            "seq",
            "id",
            "type",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "created_at",
        ),
        description="A stored entry with what the gateway knows of it; `entry` is Mistral's.",
    )
    batch = obj(
        {
            "object": const("batch"),
            "id": STRING,
            "status": enum("pending", "running", "succeeded", "failed", "rejected"),
            "item_count": INT,
            "message_id": nullable(STRING),
            "error": {},
            "published_at": nullable(TIME),
            "created_at": TIME,
            "updated_at": TIME,
        },
        ("object", "id", "status", "item_count", "created_at", "updated_at"),
    )
    batch_detail = {
        "allOf": [
            ref("Batch"),
            obj(
                {
                    "counts": obj(
                        {s: {"type": "integer", "minimum": 0} for s in BATCH_ITEM_STATUSES},
                        BATCH_ITEM_STATUSES,
                    )
                },
                ("counts",),
            ),
        ],
    }
    batch_item = obj(
        {
            "object": const("batch.item"),
            "batch_id": STRING,
            "index": {"type": "integer", "minimum": 0},
            "custom_id": nullable(STRING),
            "status": enum(*BATCH_ITEM_STATUSES),
            "conversation_id": nullable(STRING),
            "result": {},
            "error": {},
            "attempts": INT,
            "started_at": nullable(TIME),
            "finished_at": nullable(TIME),
        },
        ("object", "batch_id", "index", "status", "attempts"),
    )

    return {
        "GatewayConversation": gateway_conversation,
        "GatewayConversationPage": page("GatewayConversation"),
        "StoredEntry": stored_entry,
        "StoredEntryPage": page("StoredEntry"),
        "Batch": batch,
        "BatchDetail": batch_detail,
        "BatchPage": page("Batch"),
        "BatchItem": batch_item,
        "BatchItemPage": page("BatchItem"),
    }

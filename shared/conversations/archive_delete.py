"""Conversation archive and delete: delete (Mistral and the database), archive and unarchive.

`DELETE /v1/conversations/{id}` is Mistral's route: it answers exactly 204 with
no body. The conversation must be the caller's (another tenant's answers 404
before anything is sent upstream). Under the conversation's in-progress record
(`shared.db.in_progress`: no connection or lock is held while Mistral works; a
second delete meanwhile answers 409) Mistral deletes it, then the row goes with
its entries (they cascade), in one short transaction with its audit row.
Mistral answering 404 counts as deleted: a conversation started with `store:
false` was never kept there, and a delete whose answer was lost may already
have happened. When the database fails after Mistral deleted, the delete is
retried in new transactions; if it still fails the caller gets 503 and a
repeated delete completes it (Mistral then says 404). Usage events are separate
rows and stay: the tenant's usage still counts the conversation's tokens.

Archive and unarchive live in the gateway's namespace and change the status
only; entries are kept. Their answer (gateway shape):

    POST /gateway/v1/conversations/{id}/archive     -> 200
    POST /gateway/v1/conversations/{id}/unarchive   -> 200
    {"object": "gateway.conversation", "id": "conv_...", "status": "archived" | "active"}
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from shared.db import Conn, Pool, in_progress
from shared.errors import Conflict, NotFound, ServiceUnavailable, UpstreamRejected
from shared.mistral import MistralClient, Retry
from shared.observability import log_event
from shared.tenancy import audit

__all__ = ["delete_conversation", "set_archived"]

_DB_RETRY_PAUSES_S = (0.05, 0.25)


def _owned(conn: Conn, owner: str, conversation_id: str) -> None:
    sql = (
        "SELECT id FROM conversations WHERE id = :id AND owner_id = :owner AND status <> 'deleted'"
    )
    row = conn.one(sql, id=conversation_id, owner=owner)
    if row is None:
        raise NotFound.of("Conversation", conversation_id)


def _remove(conn: Conn, conversation_id: str) -> None:
    conn.run("DELETE FROM conversations WHERE id = :id", id=conversation_id)


def _busy() -> Conflict:
    return Conflict(
        "another change to this conversation is in progress; try again",
        headers={"Retry-After": "1"},
    )


def delete_conversation(
    pool: Pool,
    client: MistralClient,
    owner: str,
    conversation_id: str,
    *,
    request_id: str | None = None,
) -> None:
    """Delete in Mistral, then the row and its entries; 404 for anything not the caller's."""
    key = f"conversation:{owner}:{conversation_id}"
    with in_progress(pool, key, "conversations.delete", _busy, request_id=request_id) as record:
        with pool.connection() as conn:
            _owned(conn, owner, conversation_id)
        path = f"/v1/conversations/{quote(conversation_id, safe='')}"
        try:
            client.call("conversations.delete", "DELETE", path, retry=Retry.IDEMPOTENT)
        except UpstreamRejected as exc:
            if exc.status != 404:
                raise

        def finish(conn: Conn) -> None:
            _remove(conn, conversation_id)
            audit.record(conn, "conversation.delete", conversation_id, tenant_id=owner)
            record.finish(conn)

        try:
            with pool.transaction() as conn:
                finish(conn)
            return
        except Exception as exc:
            first = exc
        last: Exception = first
        for pause in _DB_RETRY_PAUSES_S:
            time.sleep(pause)
            try:
                with pool.transaction() as conn:
                    finish(conn)
                return
            except Exception as again:
                last = again
        log_event(
            "conversation_out_of_sync",
            "ERROR",
            conversation_id=conversation_id,
            owner=owner,
            error=type(last).__name__,
        )
        raise ServiceUnavailable(
            "the conversation was deleted in Mistral but the gateway could not record it;"
            " send the delete again"
        ) from first


def set_archived(pool: Pool, owner: str, conversation_id: str, archived: bool) -> dict[str, Any]:
    """Set the status to archived or back to active; entries are untouched."""
    with pool.transaction() as conn:
        row = conn.one(
            "UPDATE conversations SET status = :status"
            " WHERE id = :id AND owner_id = :owner AND status IN ('active', 'archived')"
            " RETURNING id, status",
            status="archived" if archived else "active",
            id=conversation_id,
            owner=owner,
        )
        if row is None:
            raise NotFound.of("Conversation", conversation_id)
        action = "conversation.archive" if archived else "conversation.unarchive"
        audit.record(conn, action, conversation_id, tenant_id=owner)
    return {"object": "gateway.conversation", "id": row["id"], "status": row["status"]}


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.reads._query import CONVERSATION_STATUSES
    from shared.shapes import STRING, const, enum, obj

    archived = obj(
        {
            "object": const("gateway.conversation"),
            "id": STRING,
            "status": enum(*CONVERSATION_STATUSES),
        },
        ("object", "id", "status"),
    )

    return {
        "ConversationStatus": archived,
    }

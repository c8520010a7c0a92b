"""The audit log: one row per administrative change, in the change's own transaction.

    GET /gateway/v1/audit?limit=&cursor=&tenant_id=&actor_key_id=&action=&since=&until=
        admin: its own tenant only (another tenant_id is 404); operator: any tenant,
        every filter optional. -> {"object": "list", "data": [AuditEntry, ...],
        "next_cursor": str | null}, newest first.
    AuditEntry: {"object": "gateway.audit_entry", "id", "created_at", "tenant_id",
                 "actor_key_id", "actor_prefix", "actor_role", "action", "target_id",
                 "request_id", "outcome", "changes": {...}}

`record(conn, action, target_id, ...)` inserts the row on the connection that makes
the change, so a change whose row cannot be written rolls back with it. Who acts is
request context, bound once per request by the web layer (`bind_actor`), the way the
log context is: domain functions need no extra argument for it. The row's structured
log line waits until the request succeeded (`flush`), so the log never tells of a
change that rolled back. The table is append-only (migration 0003, deploy/grants.py).
`changes` never holds a secret: callers pass field names and new values, and a key's
secret or hash is never one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import cursors
from shared.db import Conn, Pool
from shared.errors import ValidationFailed, field_error
from shared.observability import current_request, log_event
from shared.reads import QueryArgs
from shared.timestamps import rfc3339

__all__ = [
    "ACTIONS",
    "Actor",
    "AuditQuery",
    "bind_actor",
    "clear_actor",
    "discard",
    "flush",
    "list_entries",
    "record",
]

ACTIONS = (
    "key.create",
    "key.update",
    "key.rotate",
    "key.revoke",
    "tenant.create",
    "tenant.update",
    "agent.create",
    "agent.update",
    "agent.delete",
    "agent.version",
    "agent.alias.create",
    "agent.alias.delete",
    "conversation.delete",
    "conversation.archive",
    "conversation.unarchive",
    # tenant-owned Mistral resources (shared.resources)
    "file.create",
    "file.delete",
    "library.create",
    "library.delete",
    "library.share",
    "library.unshare",
    "document.create",
    "document.delete",
    "batch_job.create",
    "batch_job.delete",
)
_CURSOR = "audit"
_MAX_PAGE = 1000


@dataclass(frozen=True)
class Actor:
    """Who makes the request's changes: a key (or the command line, with no key)."""

    tenant_id: str | None
    key_id: str | None = None
    prefix: str | None = None
    role: str | None = None
    request_id: str | None = None


@dataclass
class _State:
    actor: Actor
    lines: list[dict[str, Any]] = field(default_factory=list)


_state: ContextVar[_State | None] = ContextVar("gateway_audit", default=None)


def bind_actor(actor: Actor) -> None:
    """Start a request's audit context (the actor; no pending lines)."""
    _state.set(_State(actor))


def clear_actor() -> None:
    _state.set(None)


def record(
    conn: Conn,
    action: str,
    target_id: str | None,
    *,
    tenant_id: str | None = None,
    changes: Mapping[str, Any] | None = None,
    outcome: str = "success",
) -> None:
    """Append the row for a change on `conn`, the change's own transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    state = _state.get()
    if state is None:
        # The command line (or a test) acting without a request: no key acts.
        request = current_request()
        state = _State(Actor(None, request_id=request.request_id if request else None))
        _state.set(state)
    actor = state.actor
    tenant = tenant_id or actor.tenant_id
    if tenant is None:
        raise ValueError("an audit row needs a tenant")
    row = conn.one(
        "INSERT INTO audit_log (tenant_id, actor_key_id, actor_prefix, actor_role, action,"
        " target_id, request_id, outcome, changes)"
        " VALUES (:tenant, :key, :prefix, :role, :action, :target, :request, :outcome,"
        " CAST(:changes AS jsonb)) RETURNING id, created_at",
        tenant=tenant,
        key=actor.key_id,
        prefix=actor.prefix,
        role=actor.role,
        action=action,
        target=target_id,
        request=actor.request_id,
        outcome=outcome,
        changes=json.dumps(dict(changes or {}), default=str),
    )
    assert row is not None
    state.lines.append(
        {
            "audit_id": _public_id(row["id"]),
            "tenant_id": tenant,
            "actor_key_id": actor.key_id,
            "actor_prefix": actor.prefix,
            "actor_role": actor.role,
            "action": action,
            "target_id": target_id,
            "outcome": outcome,
            "changed_fields": sorted(dict(changes or {})),
        }
    )


def flush(write: Callable[[dict[str, Any]], None] | None = None) -> None:
    """One structured log line per row recorded since the last flush (the request succeeded).

    `write` replaces the log (the command line, which has no log handler, writes the
    line to stderr so that stdout holds the new key alone).
    """
    state = _state.get()
    if state is None:
        return
    for line in state.lines:
        if write is None:
            log_event("audit", "INFO", **line)
        else:
            write({"event": "audit", **line})
    state.lines.clear()


def discard() -> None:
    """Forget the pending lines: the request failed, so its transaction rolled back."""
    state = _state.get()
    if state is not None:
        state.lines.clear()


def _public_id(number: int) -> str:
    return f"aud_{number}"


@dataclass(frozen=True)
class AuditQuery:
    """A validated audit listing: the tenant (None: every tenant) and the filters."""

    tenant_id: str | None
    limit: int
    before_id: int | None
    actor_key_id: str | None
    action: str | None
    since: datetime | None
    until: datetime | None

    @classmethod
    def from_args(cls, args: Mapping[str, str], tenant_id: str | None) -> AuditQuery:
        """Parse the query string (422 naming every bad parameter); the caller decides the
        tenant, after checking the caller may read it."""
        reader = QueryArgs(args)
        limit = reader.integer("limit", 100, 1, _MAX_PAGE)
        # The position is the row's id as text: audit ids are bigint, wider than the
        # integers cursors carry.
        position = reader.cursor("cursor", _CURSOR, (str,))
        actor = reader.text("actor_key_id")
        action = reader.choice("action", ACTIONS)
        since = reader.moment("since")
        until = reader.moment("until")
        reader.check()
        before = None
        if position:
            raw = str(position[0])
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
                msg = "Invalid cursor: pass the next_cursor of the previous page unchanged"
                raise ValidationFailed([field_error(("query", "cursor"), msg, "cursor_invalid")])
            before = int(raw)
        return cls(tenant_id, limit, before, actor, action, since, until)


def _view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "gateway.audit_entry",
        "id": _public_id(row["id"]),
        "created_at": rfc3339(row["created_at"]),
        "tenant_id": row["tenant_id"],
        "actor_key_id": row["actor_key_id"],
        "actor_prefix": row["actor_prefix"],
        "actor_role": row["actor_role"],
        "action": row["action"],
        "target_id": row["target_id"],
        "request_id": row["request_id"],
        "outcome": row["outcome"],
        "changes": row["changes"],
    }


def list_entries(pool: Pool, query: AuditQuery) -> dict[str, Any]:
    """The entries the query selects, newest first, in keyset pages."""
    with pool.connection() as conn:
        rows = conn.all(
            "SELECT id, created_at, tenant_id, actor_key_id, actor_prefix, actor_role, action,"
            " target_id, request_id, outcome, changes FROM audit_log"
            " WHERE (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)"
            " AND (CAST(:before AS bigint) IS NULL OR id < :before)"
            " AND (CAST(:actor AS text) IS NULL OR actor_key_id = :actor)"
            " AND (CAST(:action AS text) IS NULL OR action = :action)"
            " AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)"
            " AND (CAST(:until AS timestamptz) IS NULL OR created_at < :until)"
            " ORDER BY id DESC LIMIT :limit",
            tenant=query.tenant_id,
            before=query.before_id,
            actor=query.actor_key_id,
            action=query.action,
            since=query.since,
            until=query.until,
            limit=query.limit + 1,
        )
    page = rows[: query.limit]
    cursor = None
    if len(rows) > query.limit:
        cursor = cursors.encode(_CURSOR, str(page[-1]["id"]))
    return {"object": "list", "data": [_view(r) for r in page], "next_cursor": cursor}


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.shapes import STRING, TIME, const, enum, nullable, obj, page

    audit_entry = obj(
        {
            "object": const("gateway.audit_entry"),
            "id": STRING,
            "created_at": TIME,
            "tenant_id": STRING,
            "actor_key_id": nullable(STRING),
            "actor_prefix": nullable(STRING),
            "actor_role": nullable(STRING),
            "action": enum(*ACTIONS),
            "target_id": nullable(STRING),
            "request_id": nullable(STRING),
            "outcome": STRING,
            "changes": {"type": "object", "description": "The changed fields; never a secret."},
        },
        (
            "object",
            "id",
            "created_at",
            "tenant_id",
            "actor_key_id",
            "actor_prefix",
            "actor_role",
            "action",
            "target_id",
            "request_id",
            "outcome",
            "changes",
        ),
        description="One administrative change. A null actor: the command line.",
    )

    return {
        "AuditEntry": audit_entry,
        "AuditPage": page("AuditEntry"),
    }

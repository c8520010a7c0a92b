"""The API keys API: create, list, change limits, revoke, rotate. Admin only.

Routes and shapes (the gateway's namespace; every body is JSON):

    POST  /gateway/v1/keys                  {name, role, owner_id?, <limits>?}
          -> 200 {"key": Key, "secret": "mgw_..."}     the secret is shown this once
    GET   /gateway/v1/keys?limit=&page_token=
          -> 200 {"object": "list", "data": [Key, ...], "next_page_token": str | null}
    PATCH /gateway/v1/keys/{key_id}         {name?, <limits>?}     -> 200 Key
    POST  /gateway/v1/keys/{key_id}/revoke                         -> 200 Key
    POST  /gateway/v1/keys/{key_id}/rotate  -> 200 {"key": Key, "secret": "mgw_..."}

    <limits>: rate_limit_requests (>= 1), rate_limit_window (seconds, >= 1),
              token_budget_per_minute (>= 0), token_budget_per_day (>= 0);
              null means the deployment's default.

    Key: {"object": "gateway.key", "id", "name", "role", "owner_id", "prefix",
          "rate_limit_requests", "rate_limit_window", "token_budget_per_minute",
          "token_budget_per_day", "created_at", "last_used_at", "rotated_at",
          "revoked_at", "revoked"}

A key is created in the caller's tenant unless `owner_id` names another one (an
admin provisioning a tenant). Every other call is scoped to the caller's tenant:
another tenant's key answers 404. Neither the secret nor its hash is ever listed.
Revoking and rotating take effect on the instance that served the call at once
(the caller forgets its key cache) and on every other within the cache's TTL.
Unknown body fields are rejected (422) so that a misspelt limit is not silently
ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared import cursors
from shared.db import Conn, Pool
from shared.errors import Conflict, NotFound, ValidationFailed, field_error
from shared.keys import ROLES, NewKey, Principal, create_key, revoke_key, rotate_key
from shared.timestamps import rfc3339

__all__ = [
    "LIMIT_FIELDS",
    "create",
    "list_keys",
    "parse_create",
    "parse_update",
    "revoke",
    "rotate",
    "update",
]

# Field -> smallest allowed value. The largest is PostgreSQL's integer.
LIMIT_FIELDS: Mapping[str, int] = {
    "rate_limit_requests": 1,
    "rate_limit_window": 1,
    "token_budget_per_minute": 0,
    "token_budget_per_day": 0,
}
_INT_MAX = 2_147_483_647
_NAME_MAX = 200
_LIST_MAX = 1000


def _text(body: Mapping[str, Any], name: str, *, required: bool) -> list[dict[str, Any]]:
    if name not in body:
        return [field_error(("body", name), "Field required", "missing")] if required else []
    value = body[name]
    if not isinstance(value, str):
        return [field_error(("body", name), "Input should be a valid string", "string_type")]
    if not value.strip() or len(value) > _NAME_MAX:
        msg = f"String should have between 1 and {_NAME_MAX} characters"
        return [field_error(("body", name), msg, "string_length")]
    return []


def _limits(body: Mapping[str, Any]) -> tuple[dict[str, int | None], list[dict[str, Any]]]:
    limits: dict[str, int | None] = {}
    problems: list[dict[str, Any]] = []
    for name, minimum in LIMIT_FIELDS.items():
        if name not in body:
            continue
        value = body[name]
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 5.0 is 5, as JSON Schema reads it
        if value is None:
            limits[name] = None
        elif not isinstance(value, int) or isinstance(value, bool):
            problems.append(
                field_error(("body", name), "Input should be a valid integer", "int_type")
            )
        elif not minimum <= value <= _INT_MAX:
            msg = f"Input should be between {minimum} and {_INT_MAX}"
            problems.append(field_error(("body", name), msg, "range"))
        else:
            limits[name] = value
    return limits, problems


def _extra(body: Mapping[str, Any], allowed: set[str]) -> list[dict[str, Any]]:
    return [
        field_error(("body", name), "Extra inputs are not permitted", "extra_forbidden")
        for name in body
        if name not in allowed
    ]


def parse_create(body: Mapping[str, Any], caller_owner: str) -> dict[str, Any]:
    """Validated fields of a create: name, role, owner_id (default the caller's), limits."""
    problems = _extra(body, {"name", "role", "owner_id", *LIMIT_FIELDS})
    problems += _text(body, "name", required=True)
    problems += _text(body, "owner_id", required=False)
    if "role" not in body:
        problems.append(field_error(("body", "role"), "Field required", "missing"))
    elif body["role"] not in ROLES:
        msg = "Input should be " + ", ".join(f"'{r}'" for r in ROLES)
        problems.append(field_error(("body", "role"), msg, "enum"))
    limits, more = _limits(body)
    problems += more
    if problems:
        raise ValidationFailed(problems)
    return {
        "name": body["name"],
        "role": body["role"],
        "owner_id": body.get("owner_id", caller_owner),
        "limits": limits,
    }


def parse_update(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validated fields of an update: name and limits, each only if given."""
    problems = _extra(body, {"name", *LIMIT_FIELDS})
    problems += _text(body, "name", required=False)
    limits, more = _limits(body)
    problems += more
    if problems:
        raise ValidationFailed(problems)
    return {**({"name": body["name"]} if "name" in body else {}), **limits}


def _view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "gateway.key",
        "id": row["id"],
        "name": row["name"],
        "role": row["role"],
        "owner_id": row["owner_id"],
        "prefix": row["prefix"],
        **{name: row[name] for name in LIMIT_FIELDS},
        "created_at": rfc3339(row["created_at"]),
        "last_used_at": rfc3339(row["last_used_at"]),
        "rotated_at": rfc3339(row["rotated_at"]),
        "revoked_at": rfc3339(row["revoked_at"]),
        "revoked": row["revoked_at"] is not None,
    }


def _load(conn: Conn, owner: str, key_id: str) -> dict[str, Any]:
    row = conn.one(
        "SELECT id, owner_id, name, role, prefix, rate_limit_requests, rate_limit_window,"
        " token_budget_per_minute, token_budget_per_day, created_at, last_used_at, rotated_at,"
        " revoked_at FROM api_keys WHERE id = :id AND owner_id = :owner",
        id=key_id,
        owner=owner,
    )
    if row is None:
        raise NotFound.of("Key", key_id)
    return _view(row)


def _with_secret(conn: Conn, key: NewKey) -> dict[str, Any]:
    principal: Principal = key.principal
    return {"key": _load(conn, principal.owner_id, principal.key_id), "secret": key.secret}


def create(pool: Pool, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A new key and its secret, shown this once."""
    with pool.transaction() as conn:
        key = create_key(
            conn,
            owner_id=fields["owner_id"],
            name=fields["name"],
            role=fields["role"],
            limits=dict(fields["limits"]),
        )
        return _with_secret(conn, key)


def list_keys(pool: Pool, owner: str, limit_raw: str | None, token: str | None) -> dict[str, Any]:
    """The tenant's keys, oldest first, revoked ones included, in keyset pages."""
    limit = 100
    if limit_raw is not None:
        if (
            not (limit_raw.isascii() and limit_raw.isdigit())
            or not 1 <= int(limit_raw) <= _LIST_MAX
        ):
            msg = f"Input should be an integer between 1 and {_LIST_MAX}"
            raise ValidationFailed([field_error(("query", "limit"), msg, "range")])
        limit = int(limit_raw)
    after_created, after_id = (
        cursors.decode(token, "keys", (datetime, str), param="page_token")
        if token
        else (None, None)
    )
    with pool.connection() as conn:
        rows = conn.all(
            "SELECT id, owner_id, name, role, prefix, rate_limit_requests, rate_limit_window,"
            " token_budget_per_minute, token_budget_per_day, created_at, last_used_at,"
            " rotated_at, revoked_at FROM api_keys WHERE owner_id = :owner"
            " AND (CAST(:after_created AS timestamptz) IS NULL"
            "      OR (created_at, id) > (CAST(:after_created AS timestamptz),"
            "                             CAST(:after_id AS text)))"
            " ORDER BY created_at, id LIMIT :limit",
            owner=owner,
            after_created=after_created,
            after_id=after_id,
            limit=limit + 1,
        )
    page = rows[:limit]
    next_token = None
    if len(rows) > limit:
        next_token = cursors.encode("keys", page[-1]["created_at"], page[-1]["id"])
    return {"object": "list", "data": [_view(r) for r in page], "next_page_token": next_token}


def update(pool: Pool, owner: str, key_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Change the name or limits of one of the tenant's keys (revoked ones included)."""
    with pool.transaction() as conn:
        current = _load(conn, owner, key_id)
        merged = {name: fields.get(name, current[name]) for name in ("name", *LIMIT_FIELDS)}
        conn.run(
            "UPDATE api_keys SET name = :name, rate_limit_requests = :rate_limit_requests,"
            " rate_limit_window = :rate_limit_window,"
            " token_budget_per_minute = :token_budget_per_minute,"
            " token_budget_per_day = :token_budget_per_day"
            " WHERE id = :id AND owner_id = :owner",
            id=key_id,
            owner=owner,
            **merged,
        )
        return _load(conn, owner, key_id)


def revoke(pool: Pool, owner: str, key_id: str) -> dict[str, Any]:
    """Revoke one of the tenant's keys; revoking a revoked key changes nothing."""
    with pool.transaction() as conn:
        if revoke_key(conn, key_id=key_id, owner_id=owner) is None:
            raise NotFound.of("Key", key_id)
        return _load(conn, owner, key_id)


def rotate(pool: Pool, owner: str, key_id: str) -> dict[str, Any]:
    """A new secret for the same key record; the old secret stops working."""
    with pool.transaction() as conn:
        key = rotate_key(conn, key_id=key_id, owner_id=owner)
        if key is None:
            _load(conn, owner, key_id)  # 404 if it is not the tenant's at all
            raise Conflict(f"key {key_id!r} is revoked and cannot be rotated", code="key_revoked")
        return _with_secret(conn, key)

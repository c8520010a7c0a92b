"""The API keys API: create, list, change, revoke, rotate. Admins and operators.

Routes and shapes (the gateway's namespace; every body is JSON):

    POST  /gateway/v1/keys     {name, role, owner_id?, <limits>?, allowed_models?: [str],
                                allowed_agents?: [str]}
          -> 200 {"key": Key, "secret": "mgw_..."}     the secret is shown this once
    GET   /gateway/v1/keys?limit=&cursor=&owner_id=
          -> 200 {"object": "list", "data": [Key, ...], "next_cursor": str | null}
    PATCH /gateway/v1/keys/{key_id}   {name?, <limits>?, allowed_models?, allowed_agents?}
                                                                     -> 200 Key
    POST  /gateway/v1/keys/{key_id}/revoke                         -> 200 Key
    POST  /gateway/v1/keys/{key_id}/rotate  {grace_s?: 0..604800}
          -> 200 {"key": Key, "secret": "mgw_..."}; the old secret works until
             `previous_secret_expires_at`

    <limits>: rate_limit_requests (>= 1), rate_limit_window (seconds, >= 1),
              token_budget_per_minute (>= 0), token_budget_per_day (>= 0);
              null means the tenant's limit. A key's limit narrows its tenant's,
              never widens it (`shared.tenancy.tenants.effective_limits`).

    Key: {"object": "gateway.key", "id", "name", "role", "owner_id", "prefix",
          "rate_limit_requests", "rate_limit_window", "token_budget_per_minute",
          "token_budget_per_day", "allowed_models", "allowed_agents", "created_at",
          "last_used_at", "rotated_at", "previous_secret_expires_at", "revoked_at",
          "revoked"}

An admin acts inside its own tenant only: `owner_id` naming another tenant is 404
(as a missing tenant is), another tenant's key is 404, and operator keys are
neither listed to it nor changed by it; it cannot make an operator key. An
operator acts on any tenant's keys (by id, or `owner_id` to create and list).
`allowed_agents` names agents of the key's tenant (another tenant's id is 404 as
a missing one is); empty lists mean no restriction. Neither the secret nor its
hash is ever listed or audited. Revoking and rotating take effect on the instance
that served the call at once (the caller forgets its key cache) and on every
other within the cache's TTL. Unknown body fields are rejected (422).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared import cursors
from shared.db import Conn, Pool, text_array
from shared.errors import (
    NAME_MAX,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    extra_field_problems,
    field_error,
    text_field_problems,
)
from shared.reads import QueryArgs
from shared.tenancy import audit, tenants
from shared.tenancy.auth import crosses_tenants, tenant_scope
from shared.tenancy.keys import (
    KEY_PREFIX,
    MAX_GRACE_S,
    ROLES,
    NewKey,
    Principal,
    create_key,
    revoke_key,
    rotate_key,
)
from shared.timestamps import rfc3339

__all__ = [
    "ALLOW_LIST_FIELDS",
    "LIMIT_FIELDS",
    "create",
    "list_keys",
    "parse_create",
    "parse_rotate",
    "parse_update",
    "revoke",
    "rotate",
    "update",
]

LIMIT_FIELDS = tenants.LIMIT_FIELDS
ALLOW_LIST_FIELDS = ("allowed_models", "allowed_agents")
_NAME_MAX = NAME_MAX
_LIST_MAX = 1000
_ALLOW_MAX = 100
_CURSOR = "keys"
_COLUMNS = (
    "id, owner_id, name, role, prefix, rate_limit_requests, rate_limit_window,"
    " token_budget_per_minute, token_budget_per_day, allowed_models, allowed_agents,"
    " created_at, last_used_at, rotated_at, revoked_at,"
    " CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END"
    " AS previous_secret_expires_at"
)


def _allow_lists(body: Mapping[str, Any]) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    lists: dict[str, list[str]] = {}
    problems: list[dict[str, Any]] = []
    for name in ALLOW_LIST_FIELDS:
        if name not in body:
            continue
        value = body[name]
        if value is None:
            value = []
        if (
            not isinstance(value, list)
            or len(value) > _ALLOW_MAX
            or not all(isinstance(v, str) and 0 < len(v) <= _NAME_MAX for v in value)
        ):
            msg = f"Input should be a list of at most {_ALLOW_MAX} non-empty strings"
            problems.append(field_error(("body", name), msg, "list_type"))
            continue
        lists[name] = sorted(set(value))
    return lists, problems


def parse_create(body: Mapping[str, Any], caller: Principal) -> dict[str, Any]:
    """Validated fields of a create, the tenant checked against the caller's reach."""
    problems = extra_field_problems(
        body, {"name", "role", "owner_id", *LIMIT_FIELDS, *ALLOW_LIST_FIELDS}
    )
    problems += text_field_problems(body, "name", required=True)
    problems += text_field_problems(body, "owner_id", required=False)
    if "role" not in body:
        problems.append(field_error(("body", "role"), "Field required", "missing"))
    elif body["role"] not in ROLES:
        msg = "Input should be " + ", ".join(f"'{r}'" for r in ROLES)
        problems.append(field_error(("body", "role"), msg, "enum"))
    limits, more = tenants.parse_limits(body)
    problems += more
    lists, more = _allow_lists(body)
    problems += more
    if problems:
        raise ValidationFailed(problems)
    owner = tenant_scope(caller, body.get("owner_id"))
    if body["role"] == "operator" and not crosses_tenants(caller.role):
        raise Forbidden("only an operator may create an operator key")
    return {
        "name": body["name"],
        "role": body["role"],
        "owner_id": owner,
        "limits": limits,
        "allowed_models": lists.get("allowed_models", []),
        "allowed_agents": lists.get("allowed_agents", []),
    }


def parse_update(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validated fields of an update: name, limits and allow-lists, each only if given."""
    problems = extra_field_problems(body, {"name", *LIMIT_FIELDS, *ALLOW_LIST_FIELDS})
    problems += text_field_problems(body, "name", required=False)
    limits, more = tenants.parse_limits(body)
    problems += more
    lists, more = _allow_lists(body)
    problems += more
    if problems:
        raise ValidationFailed(problems)
    return {**({"name": body["name"]} if "name" in body else {}), **limits, **lists}


def parse_rotate(body: Mapping[str, Any] | None) -> int:
    """The grace window of a rotation (seconds; default 0)."""
    body = body or {}
    problems = extra_field_problems(body, {"grace_s"})
    grace = body.get("grace_s", 0)
    if isinstance(grace, float) and grace.is_integer():
        grace = int(grace)
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= MAX_GRACE_S:
        msg = f"Input should be an integer between 0 and {MAX_GRACE_S}"
        problems.append(field_error(("body", "grace_s"), msg, "range"))
    if problems:
        raise ValidationFailed(problems)
    return int(grace)


def _view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "gateway.key",
        "id": row["id"],
        "name": row["name"],
        "role": row["role"],
        "owner_id": row["owner_id"],
        "prefix": row["prefix"],
        **{name: row[name] for name in LIMIT_FIELDS},
        "allowed_models": list(row["allowed_models"] or []),
        "allowed_agents": list(row["allowed_agents"] or []),
        "created_at": rfc3339(row["created_at"]),
        "last_used_at": rfc3339(row["last_used_at"]),
        "rotated_at": rfc3339(row["rotated_at"]),
        "previous_secret_expires_at": rfc3339(row["previous_secret_expires_at"]),
        "revoked_at": rfc3339(row["revoked_at"]),
        "revoked": row["revoked_at"] is not None,
    }


def _load(conn: Conn, caller: Principal, key_id: str) -> dict[str, Any]:
    """The key if the caller may act on it; 404 otherwise (as for a missing one)."""
    operator = crosses_tenants(caller.role)
    row = conn.one(
        f"SELECT {_COLUMNS} FROM api_keys WHERE id = :id"  # noqa: S608 (constant column list; values are parameters)
        " AND (CAST(:any AS boolean) OR (owner_id = :owner AND role <> 'operator'))",
        id=key_id,
        any=operator,
        owner=caller.owner_id,
    )
    if row is None:
        raise NotFound.of("Key", key_id)
    return row


def _check_agents(conn: Conn, owner: str, agent_ids: list[str]) -> None:
    """404 for an agent that is not the tenant's, exactly as for a missing one."""
    if not agent_ids:
        return
    rows = conn.all(
        "SELECT id FROM agents WHERE owner_id = :owner AND status = 'active'"
        " AND id = ANY(CAST(:ids AS text[]))",
        owner=owner,
        ids=text_array(agent_ids),
    )
    missing = sorted(set(agent_ids) - {r["id"] for r in rows})
    if missing:
        raise NotFound.of("Agent", missing[0])


def _with_secret(conn: Conn, key: NewKey) -> dict[str, Any]:
    row = conn.one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = :id", id=key.principal.key_id)  # noqa: S608 (constant column list; values are parameters)
    assert row is not None
    return {"key": _view(row), "secret": key.secret}


def create(pool: Pool, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A new key and its secret, shown this once; 404 if the tenant does not exist."""
    owner = fields["owner_id"]
    with pool.transaction() as conn:
        tenants.require(conn, owner)
        _check_agents(conn, owner, fields["allowed_agents"])
        key = create_key(
            conn,
            owner_id=owner,
            name=fields["name"],
            role=fields["role"],
            limits=dict(fields["limits"]),
            allowed_models=fields["allowed_models"],
            allowed_agents=fields["allowed_agents"],
        )
        changes = {k: v for k, v in fields.items() if k != "limits"}
        audit.record(
            conn,
            "key.create",
            key.principal.key_id,
            tenant_id=owner,
            changes={**changes, **fields["limits"]},
        )
        return _with_secret(conn, key)


def list_keys(pool: Pool, caller: Principal, args: Mapping[str, str]) -> dict[str, Any]:
    """A tenant's keys (the caller's, or `owner_id`'s for an operator), oldest first,
    revoked ones included, in keyset pages."""
    reader = QueryArgs(args)
    limit = reader.integer("limit", 100, 1, _LIST_MAX)
    position = reader.cursor("cursor", _CURSOR, (datetime, str))
    named = reader.text("owner_id")
    reader.check()
    owner = tenant_scope(caller, named)
    after_created, after_id = position if position else (None, None)
    with pool.connection() as conn:
        if owner != caller.owner_id:
            tenants.require(conn, owner)
        rows = conn.all(
            f"SELECT {_COLUMNS} FROM api_keys WHERE owner_id = :owner"  # noqa: S608 (constant column list; values are parameters)
            " AND (CAST(:any AS boolean) OR role <> 'operator')"
            " AND (CAST(:after_created AS timestamptz) IS NULL"
            "      OR (created_at, id) > (CAST(:after_created AS timestamptz),"
            "                             CAST(:after_id AS text)))"
            " ORDER BY created_at, id LIMIT :limit",
            owner=owner,
            any=crosses_tenants(caller.role),
            after_created=after_created,
            after_id=after_id,
            limit=limit + 1,
        )
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        cursor = cursors.encode(_CURSOR, page[-1]["created_at"], page[-1]["id"])
    return {"object": "list", "data": [_view(r) for r in page], "next_cursor": cursor}


def update(pool: Pool, caller: Principal, key_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Change the name, limits or allow-lists of a key (revoked ones included)."""
    with pool.transaction() as conn:
        current = _load(conn, caller, key_id)
        if "allowed_agents" in fields:
            _check_agents(conn, current["owner_id"], fields["allowed_agents"])
        names = ("name", *LIMIT_FIELDS, *ALLOW_LIST_FIELDS)
        merged = {name: fields.get(name, current[name]) for name in names}
        conn.run(
            "UPDATE api_keys SET name = :name, rate_limit_requests = :rate_limit_requests,"
            " rate_limit_window = :rate_limit_window,"
            " token_budget_per_minute = :token_budget_per_minute,"
            " token_budget_per_day = :token_budget_per_day,"
            " allowed_models = CAST(:allowed_models AS text[]),"
            " allowed_agents = CAST(:allowed_agents AS text[])"
            " WHERE id = :id",
            id=key_id,
            **{**merged, **{n: text_array(merged[n] or []) for n in ALLOW_LIST_FIELDS}},
        )
        changed = {k: v for k, v in fields.items() if current[k] != v}
        audit.record(conn, "key.update", key_id, tenant_id=current["owner_id"], changes=changed)
        return _view(_load(conn, caller, key_id))


def revoke(pool: Pool, caller: Principal, key_id: str) -> dict[str, Any]:
    """Revoke a key; revoking a revoked key changes nothing (and is not audited again)."""
    with pool.transaction() as conn:
        current = _load(conn, caller, key_id)
        if revoke_key(conn, key_id=key_id, owner_id=current["owner_id"]):
            audit.record(conn, "key.revoke", key_id, tenant_id=current["owner_id"])
        return _view(_load(conn, caller, key_id))


def rotate(pool: Pool, caller: Principal, key_id: str, grace_s: int) -> dict[str, Any]:
    """A new secret for the same key record; the old one works `grace_s` seconds more."""
    with pool.transaction() as conn:
        current = _load(conn, caller, key_id)
        key = rotate_key(conn, key_id=key_id, owner_id=current["owner_id"], grace_s=grace_s)
        if key is None:
            raise Conflict(f"key {key_id!r} is revoked and cannot be rotated", code="key_revoked")
        audit.record(
            conn, "key.rotate", key_id, tenant_id=current["owner_id"], changes={"grace_s": grace_s}
        )
        return _with_secret(conn, key)


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.shapes import BOOL, INT, STRING, TIME, Json, const, enum, nullable, obj, page, ref

    key_name = tenants.name_schema()
    limits = tenants.limit_schemas()
    allow_list: Json = {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": _NAME_MAX},
        "maxItems": _ALLOW_MAX,
        "description": "Empty: no restriction. Agents are ids (aliases and versions are of an"
        " agent); a start, append or restart outside the list is 403.",
    }
    # A request may send null for an allow-list: no restriction, as an empty one.
    allow_list_in: Json = {**allow_list, "type": ["array", "null"]}
    key = obj(
        {
            "object": const("gateway.key"),
            "id": STRING,
            "name": STRING,
            "role": enum(*ROLES),
            "owner_id": STRING,
            "prefix": {"type": "string", "description": "The key's visible start, for listings."},
            **{name: nullable(INT) for name in LIMIT_FIELDS},
            "allowed_models": allow_list,
            "allowed_agents": allow_list,
            "created_at": TIME,
            "last_used_at": nullable(TIME),
            "rotated_at": nullable(TIME),
            "previous_secret_expires_at": {
                **nullable(TIME),
                "description": "Until when the secret before the last rotation still works.",
            },
            "revoked_at": nullable(TIME),
            "revoked": BOOL,
        },
        (
            "object",
            "id",
            "name",
            "role",
            "owner_id",
            "prefix",
            *LIMIT_FIELDS,
            "allowed_models",
            "allowed_agents",
            "created_at",
            "last_used_at",
            "rotated_at",
            "previous_secret_expires_at",
            "revoked_at",
            "revoked",
        ),
        description="An API key's record. Neither its secret nor the secret's hash is ever shown.",
    )
    key_with_secret = obj(
        {
            "key": ref("Key"),
            "secret": {
                "type": "string",
                "pattern": f"^{KEY_PREFIX}[A-Za-z0-9_-]{{43}}$",
                "description": "The key itself: shown this once, stored only as a hash.",
            },
        },
        ("key", "secret"),
    )
    create_key = obj(
        {
            "name": key_name,
            "role": enum(*ROLES),
            "owner_id": {
                **key_name,
                "description": "The tenant to make the key in; default the caller's. Another"
                " tenant: operators only (an admin gets 404).",
            },
            **limits,
            "allowed_models": allow_list_in,
            "allowed_agents": allow_list_in,
        },
        ("name", "role"),
        additionalProperties=False,
        description="Unknown fields are refused (422), so a misspelt limit is not ignored.",
    )
    rotate_key = obj(
        {
            "grace_s": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_GRACE_S,
                "default": 0,
                "description": "Seconds the old secret keeps working (then it stops everywhere"
                " within the key cache's TTL).",
            }
        },
        (),
        additionalProperties=False,
    )
    update_key = obj(
        {
            "name": key_name,
            **limits,
            "allowed_models": allow_list_in,
            "allowed_agents": allow_list_in,
        },
        additionalProperties=False,
        description="Only the fields given change; unknown fields are refused (422).",
    )

    return {
        "Key": key,
        "KeyWithSecret": key_with_secret,
        "KeyPage": page("Key"),
        "CreateKeyRequest": create_key,
        "UpdateKeyRequest": update_key,
        "RotateKeyRequest": rotate_key,
    }

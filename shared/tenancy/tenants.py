"""Tenants as objects: who they are, whether they are on, and their limits.

    POST  /gateway/v1/tenants   {id, name, <limits>?}                 -> 200 Tenant
    GET   /gateway/v1/tenants?limit=&cursor=                          -> list of Tenant
    GET   /gateway/v1/tenants/{tenant_id}                              -> Tenant
    PATCH /gateway/v1/tenants/{tenant_id}  {name?, disabled?, <limits>?} -> Tenant

    Tenant: {"object": "gateway.tenant", "id", "name", "created_at", "disabled",
             "rate_limit_requests", "rate_limit_window", "token_budget_per_minute",
             "token_budget_per_day"}      (a null limit: the deployment's default)

Only an operator creates, lists and changes tenants; an admin may read its own.
A disabled tenant's keys answer 401 within the key cache's TTL. A key's limits
narrow its tenant's, never widen them: `effective_limits` takes the tighter of
the two, so a key with no budget (0) still spends within its tenant's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared import cursors
from shared.config import Settings
from shared.db import Conn, Pool
from shared.errors import (
    Conflict,
    NotFound,
    ValidationFailed,
    extra_field_problems,
    field_error,
    text_field_problems,
)
from shared.limits.ratelimit import Budget, Limit
from shared.reads import QueryArgs
from shared.tenancy import audit
from shared.tenancy.keys import Principal
from shared.timestamps import rfc3339

__all__ = [
    "LIMIT_FIELDS",
    "create",
    "effective_limits",
    "get",
    "list_tenants",
    "parse_create",
    "parse_update",
    "require",
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
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_COLUMNS = (
    "id, name, disabled, rate_limit_requests, rate_limit_window, token_budget_per_minute,"
    " token_budget_per_day, created_at"
)
_CURSOR = "tenants"


def parse_limits(body: Mapping[str, Any]) -> tuple[dict[str, int | None], list[dict[str, Any]]]:
    """The limit fields present in `body` (null kept: it means the default), and problems."""
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


def parse_create(body: Mapping[str, Any]) -> dict[str, Any]:
    problems = extra_field_problems(body, {"id", "name", *LIMIT_FIELDS})
    if "id" not in body:
        problems.append(field_error(("body", "id"), "Field required", "missing"))
    elif not isinstance(body["id"], str) or not _ID.match(body["id"]):
        msg = "Input should be 1 to 128 letters, digits, '.', '_' or '-', starting alphanumeric"
        problems.append(field_error(("body", "id"), msg, "string_pattern_mismatch"))
    problems += text_field_problems(body, "name", required=True)
    limits, more = parse_limits(body)
    problems += more
    if problems:
        raise ValidationFailed(problems)
    return {"id": body["id"], "name": body["name"], **limits}


def parse_update(body: Mapping[str, Any]) -> dict[str, Any]:
    problems = extra_field_problems(body, {"name", "disabled", *LIMIT_FIELDS})
    problems += text_field_problems(body, "name", required=False)
    if "disabled" in body and not isinstance(body["disabled"], bool):
        problems.append(
            field_error(("body", "disabled"), "Input should be a valid boolean", "bool_type")
        )
    limits, more = parse_limits(body)
    problems += more
    if problems:
        raise ValidationFailed(problems)
    fields = {name: body[name] for name in ("name", "disabled") if name in body}
    return {**fields, **limits}


def _view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "gateway.tenant",
        "id": row["id"],
        "name": row["name"],
        "created_at": rfc3339(row["created_at"]),
        "disabled": row["disabled"],
        **{name: row[name] for name in LIMIT_FIELDS},
    }


def _load(conn: Conn, tenant_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = conn.one(
        f"SELECT {_COLUMNS} FROM tenants WHERE id = :id" + (" FOR UPDATE" if lock else ""),  # noqa: S608 (constant column list; values are parameters)
        id=tenant_id,
    )
    if row is None:
        raise NotFound.of("Tenant", tenant_id)
    return row


def require(conn: Conn, tenant_id: str) -> None:
    """404 unless the tenant exists (disabled ones included)."""
    _load(conn, tenant_id)


def get(pool: Pool, tenant_id: str) -> dict[str, Any]:
    with pool.connection() as conn:
        return _view(_load(conn, tenant_id))


def create(pool: Pool, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A new tenant; 409 if the id is taken."""
    with pool.transaction() as conn:
        row = conn.one(
            "INSERT INTO tenants (id, name, rate_limit_requests, rate_limit_window,"  # noqa: S608 (constant column list; values are parameters)
            " token_budget_per_minute, token_budget_per_day)"
            " VALUES (:id, :name, :rate_limit_requests, :rate_limit_window,"
            " :token_budget_per_minute, :token_budget_per_day)"
            f" ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
            id=fields["id"],
            name=fields["name"],
            **{name: fields.get(name) for name in LIMIT_FIELDS},
        )
        if row is None:
            raise Conflict(f"a tenant {fields['id']!r} already exists")
        audit.record(
            conn,
            "tenant.create",
            row["id"],
            tenant_id=row["id"],
            changes={k: v for k, v in fields.items() if k != "id"},
        )
        return _view(row)


def update(pool: Pool, tenant_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Change a tenant's name, state or limits; only the fields given."""
    with pool.transaction() as conn:
        current = _load(conn, tenant_id, lock=True)
        merged = {
            name: fields.get(name, current[name]) for name in ("name", "disabled", *LIMIT_FIELDS)
        }
        row = conn.one(
            "UPDATE tenants SET name = :name, disabled = :disabled,"  # noqa: S608 (constant column list; values are parameters)
            " rate_limit_requests = :rate_limit_requests, rate_limit_window = :rate_limit_window,"
            " token_budget_per_minute = :token_budget_per_minute,"
            " token_budget_per_day = :token_budget_per_day, updated_at = now()"
            f" WHERE id = :id RETURNING {_COLUMNS}",
            id=tenant_id,
            **merged,
        )
        assert row is not None
        changed = {k: v for k, v in fields.items() if current[k] != v}
        audit.record(conn, "tenant.update", tenant_id, tenant_id=tenant_id, changes=changed)
        return _view(row)


def list_tenants(pool: Pool, args: Mapping[str, str]) -> dict[str, Any]:
    """Every tenant, by id, in keyset pages."""
    reader = QueryArgs(args)
    limit = reader.integer("limit", 100, 1, 1000)
    position = reader.cursor("cursor", _CURSOR, (str,))
    reader.check()
    after = str(position[0]) if position else None
    with pool.connection() as conn:
        rows = conn.all(
            f"SELECT {_COLUMNS} FROM tenants"  # noqa: S608 (constant column list; values are parameters)
            " WHERE CAST(:after AS text) IS NULL OR id > :after ORDER BY id LIMIT :limit",
            after=after,
            limit=limit + 1,
        )
    page = rows[:limit]
    cursor = cursors.encode(_CURSOR, page[-1]["id"]) if len(rows) > limit else None
    return {"object": "list", "data": [_view(r) for r in page], "next_cursor": cursor}


def _tighter_budget(key: int | None, tenant: int) -> int:
    """0 is no budget: the tighter of two budgets is the smaller one that exists."""
    if key is None or key == 0:
        return tenant
    return key if tenant == 0 else min(key, tenant)


def effective_limits(principal: Principal, settings: Settings) -> tuple[Limit, Budget]:
    """The key's limits within its tenant's (each null: the deployment's default)."""
    t_requests, t_window, t_minute, t_day = principal.tenant_limits
    tenant_rate = Limit(
        t_requests or settings.rate_limit_requests, t_window or settings.rate_limit_window
    )
    key_rate = Limit(
        principal.rate_limit_requests or tenant_rate.requests,
        principal.rate_limit_window or tenant_rate.window_s,
    )
    # The lower rate of the two (requests per second), compared without division.
    tighter = (
        key_rate
        if key_rate.requests * tenant_rate.window_s <= tenant_rate.requests * key_rate.window_s
        else tenant_rate
    )
    minute = settings.token_budget_per_minute if t_minute is None else t_minute
    day = settings.token_budget_per_day if t_day is None else t_day
    budget = Budget(
        _tighter_budget(principal.token_budget_per_minute, minute),
        _tighter_budget(principal.token_budget_per_day, day),
    )
    return tighter, budget


def name_schema() -> dict[str, Any]:
    """JSON Schema of a tenant's or key's name, as `text_field_problems` checks it."""
    from shared.errors import NAME_MAX, NOT_BLANK

    return {"type": "string", "pattern": NOT_BLANK, "maxLength": NAME_MAX}


def limit_schemas() -> dict[str, Any]:
    """JSON Schema of each limit field, as `parse_limits` checks it."""
    from shared.shapes import INT32_MAX

    return {
        name: {
            "type": ["integer", "null"],
            "minimum": minimum,
            "maximum": INT32_MAX,
            "description": "null: the deployment's default.",
        }
        for name, minimum in LIMIT_FIELDS.items()
    }


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.shapes import BOOL, INT, STRING, TIME, const, nullable, obj, page

    key_name = name_schema()
    limits = limit_schemas()
    tenant_id = {"type": "string", "pattern": _ID.pattern}
    tenant = obj(
        {
            "object": const("gateway.tenant"),
            "id": STRING,
            "name": STRING,
            "created_at": TIME,
            "disabled": BOOL,
            **{name: nullable(INT) for name in LIMIT_FIELDS},
        },
        ("object", "id", "name", "created_at", "disabled", *LIMIT_FIELDS),
        description="A tenant; a null limit is the deployment's default. A key narrows its"
        " tenant's limits, never widens them.",
    )
    create_tenant = obj(
        {"id": tenant_id, "name": key_name, **limits},
        ("id", "name"),
        additionalProperties=False,
    )
    update_tenant = obj(
        {"name": key_name, "disabled": BOOL, **limits},
        additionalProperties=False,
        description="Only the fields given change. A disabled tenant's keys answer 401.",
    )

    return {
        "Tenant": tenant,
        "TenantPage": page("Tenant"),
        "CreateTenantRequest": create_tenant,
        "UpdateTenantRequest": update_tenant,
    }

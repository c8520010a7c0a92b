"""Gateway API keys: random, shown once, stored only as a hash.

A key reads `mgw_` followed by 43 URL-safe characters (256 random bits). The
database keeps its SHA-256 and the first 12 characters for listings. A slow
password hash buys nothing for secrets this long and would cost every request
CPU; a lookup by hash also needs no secret comparison at all.
Its command line (the first key of a deployment) is `shared.tenancy.__main__`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.db import Conn, Pool, text_array
from shared.errors import Unauthorized

__all__ = [
    "KEY_PREFIX",
    "MAX_GRACE_S",
    "ROLES",
    "KeyCache",
    "NewKey",
    "Principal",
    "create_key",
    "hash_key",
    "new_secret",
    "parse_bearer",
    "revoke_key",
    "rotate_key",
]

KEY_PREFIX = "mgw_"
ROLES = ("operator", "admin", "user", "read_only")
# A rotation's grace window: the old secret keeps working at most this long.
MAX_GRACE_S = 7 * 24 * 3600
_VISIBLE = len(KEY_PREFIX) + 8
_KEY_LENGTH = len(KEY_PREFIX) + 43


@dataclass(frozen=True)
class Principal:
    """The caller, as its key says: who owns it and what it may do."""

    key_id: str
    owner_id: str
    name: str
    role: str
    prefix: str
    rate_limit_requests: int | None = None
    rate_limit_window: int | None = None
    token_budget_per_minute: int | None = None
    token_budget_per_day: int | None = None
    # The tenant's own limits (null: the deployment's default); the key may only narrow them.
    tenant_limits: tuple[int | None, int | None, int | None, int | None] = (None,) * 4
    # Allow-lists: empty means no restriction.
    allowed_models: tuple[str, ...] = ()
    allowed_agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewKey:
    """A key just made: the only moment its secret exists outside the caller."""

    principal: Principal
    secret: str


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_bearer(header: str | None) -> str:
    """The key from an Authorization header; 401 for anything malformed."""
    if not header:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <key>'")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("malformed Authorization header; send 'Authorization: Bearer <key>'")
    if not token.startswith(KEY_PREFIX) or len(token) != _KEY_LENGTH:
        raise Unauthorized("unknown or revoked API key")
    return token


def create_key(
    conn: Conn,
    *,
    owner_id: str,
    name: str,
    role: str,
    limits: dict[str, int | None] | None = None,
    allowed_models: tuple[str, ...] | list[str] = (),
    allowed_agents: tuple[str, ...] | list[str] = (),
) -> NewKey:
    """Insert a new key; return it with its secret (never stored, never logged).

    The tenant is created (named after its id) if it does not exist: the command
    line's first key makes its tenant. The keys API checks the tenant exists first.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    secret = new_secret()
    key_id = "key_" + secrets.token_hex(8)
    limits = limits or {}
    conn.run(
        "INSERT INTO tenants (id, name) VALUES (:id, :id) ON CONFLICT (id) DO NOTHING",
        id=owner_id,
    )
    row = conn.one(
        "INSERT INTO api_keys (id, owner_id, name, role, prefix, secret_hash,"  # noqa: S608 (constant column list; values are parameters)
        " rate_limit_requests, rate_limit_window, token_budget_per_minute, token_budget_per_day,"
        " allowed_models, allowed_agents)"
        " VALUES (:id, :owner, :name, :role, :prefix, :hash, :rl, :rw, :tbm, :tbd,"
        " CAST(:models AS text[]), CAST(:agents AS text[]))"
        " RETURNING " + _PRINCIPAL_COLUMNS,
        id=key_id,
        owner=owner_id,
        name=name,
        role=role,
        prefix=secret[:_VISIBLE],
        hash=hash_key(secret),
        rl=limits.get("rate_limit_requests"),
        rw=limits.get("rate_limit_window"),
        tbm=limits.get("token_budget_per_minute"),
        tbd=limits.get("token_budget_per_day"),
        models=text_array(list(allowed_models)),
        agents=text_array(list(allowed_agents)),
    )
    assert row is not None
    return NewKey(_principal(row), secret)


def revoke_key(conn: Conn, *, key_id: str, owner_id: str | None) -> bool | None:
    """Revoke a key of the owner (any tenant's when `owner_id` is None): True if it was
    live, False if already revoked, None if unknown.

    Instances that cached the key keep accepting it until their cache entry
    expires (`KeyCache`, at most its TTL); the caller forgets its own cache.
    """
    row = conn.one(
        "UPDATE api_keys SET revoked_at = now(), previous_secret_hash = NULL,"
        " previous_secret_expires_at = NULL"
        " WHERE id = :id AND (CAST(:owner AS text) IS NULL OR owner_id = :owner)"
        " AND revoked_at IS NULL RETURNING id",
        id=key_id,
        owner=owner_id,
    )
    if row is not None:
        return True
    known = conn.one(
        "SELECT id FROM api_keys WHERE id = :id"
        " AND (CAST(:owner AS text) IS NULL OR owner_id = :owner)",
        id=key_id,
        owner=owner_id,
    )
    return False if known is not None else None


def rotate_key(conn: Conn, *, key_id: str, owner_id: str | None, grace_s: int = 0) -> NewKey | None:
    """Give a live key a new secret (same id, role and limits); None if unknown or revoked.

    With `grace_s` > 0 the old secret keeps working that many seconds more (then
    stops within the key cache's TTL); with 0 it stops as `revoke_key`'s does.
    A secret still in an earlier grace window is replaced by this one's.
    """
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise ValueError(f"grace_s must be between 0 and {MAX_GRACE_S}")
    secret = new_secret()
    row = conn.one(
        "UPDATE api_keys SET secret_hash = :hash, prefix = :prefix, rotated_at = now(),"  # noqa: S608 (constant column list; values are parameters)
        " previous_secret_hash = CASE WHEN CAST(:grace AS integer) > 0 THEN secret_hash END,"
        " previous_secret_expires_at = CASE WHEN CAST(:grace AS integer) > 0"
        "   THEN now() + make_interval(secs => CAST(:grace AS integer)) END"
        " WHERE id = :id AND (CAST(:owner AS text) IS NULL OR owner_id = :owner)"
        " AND revoked_at IS NULL RETURNING " + _PRINCIPAL_COLUMNS,
        hash=hash_key(secret),
        prefix=secret[:_VISIBLE],
        grace=grace_s,
        id=key_id,
        owner=owner_id,
    )
    if row is None:
        return None
    return NewKey(_principal(row), secret)


_PRINCIPAL_COLUMNS = (
    "id, owner_id, name, role, prefix, rate_limit_requests, rate_limit_window,"
    " token_budget_per_minute, token_budget_per_day, allowed_models, allowed_agents"
)
_TENANT_LIMITS = (
    "rate_limit_requests",
    "rate_limit_window",
    "token_budget_per_minute",
    "token_budget_per_day",
)


def _principal(row: dict[str, Any], tenant: dict[str, Any] | None = None) -> Principal:
    tenant_limits: Any = tuple((tenant or {}).get(name) for name in _TENANT_LIMITS)
    return Principal(
        key_id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        role=row["role"],
        prefix=row["prefix"],
        rate_limit_requests=row["rate_limit_requests"],
        rate_limit_window=row["rate_limit_window"],
        token_budget_per_minute=row["token_budget_per_minute"],
        token_budget_per_day=row["token_budget_per_day"],
        tenant_limits=tenant_limits,
        allowed_models=tuple(row.get("allowed_models") or ()),
        allowed_agents=tuple(row.get("allowed_agents") or ()),
    )


# The key by its current secret, or by its previous one inside the grace window; never
# a revoked key, never a key of a disabled tenant.
_RESOLVE_SQL = (
    "UPDATE api_keys AS k SET last_used_at = now() FROM tenants AS t"
    " WHERE t.id = k.owner_id AND NOT t.disabled AND k.revoked_at IS NULL"
    " AND (k.secret_hash = :h"
    "      OR (k.previous_secret_hash = :h AND k.previous_secret_expires_at > now()))"
    " RETURNING k.id, k.owner_id, k.name, k.role, k.prefix, k.rate_limit_requests,"
    " k.rate_limit_window, k.token_budget_per_minute, k.token_budget_per_day,"
    " k.allowed_models, k.allowed_agents, t.rate_limit_requests AS t_rate_limit_requests,"
    " t.rate_limit_window AS t_rate_limit_window,"
    " t.token_budget_per_minute AS t_token_budget_per_minute,"
    " t.token_budget_per_day AS t_token_budget_per_day"
)


class KeyCache:
    """Resolves a key to its Principal, remembering answers for `ttl_s` seconds.

    The cache spares the database a query per request; its TTL bounds how long
    a revoked or rotated key keeps working on an instance (DESIGN: 5 seconds).
    Each refresh also records `last_used_at`, at most once per TTL per key,
    so usage tracking is not a write per request.
    """

    def __init__(
        self, pool: Callable[[], Pool], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[bytes, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, secret: str) -> Principal:
        digest = hash_key(secret)
        now = self._clock()
        cached = self._entries.get(digest)
        if cached is not None and now - cached[0] < self._ttl_s:
            principal = cached[1]
        else:
            principal = self._load(digest)
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[digest] = (now, principal)
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        return principal

    def _load(self, digest: bytes) -> Principal | None:
        with self._pool().connection() as conn:
            row = conn.one(_RESOLVE_SQL, h=digest)
        if row is None:
            return None
        tenant = {name: row["t_" + name] for name in _TENANT_LIMITS}
        return _principal(row, tenant)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()

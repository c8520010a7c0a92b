"""Gateway API keys: random, shown once, stored only as a hash.

A key reads `mgw_` followed by 43 URL-safe characters (256 random bits). The
database keeps its SHA-256 and the first 12 characters for listings. A slow
password hash buys nothing for secrets this long and would cost every request
CPU; a lookup by hash also needs no secret comparison at all.

    python -m shared.keys create-admin --owner <tenant> [--name <name>]

prints a new admin key once (the first key of a deployment, or a break-glass one).
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.db import Conn, Pool
from shared.errors import Unauthorized

__all__ = [
    "KEY_PREFIX",
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
ROLES = ("admin", "user", "read_only")
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
) -> NewKey:
    """Insert a new key; return it with its secret (never stored, never logged)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    secret = new_secret()
    key_id = "key_" + secrets.token_hex(8)
    limits = limits or {}
    row = conn.one(
        "INSERT INTO api_keys (id, owner_id, name, role, prefix, secret_hash,"
        " rate_limit_requests, rate_limit_window, token_budget_per_minute, token_budget_per_day)"
        " VALUES (:id, :owner, :name, :role, :prefix, :hash, :rl, :rw, :tbm, :tbd)"
        " RETURNING id, owner_id, name, role, prefix, rate_limit_requests, rate_limit_window,"
        " token_budget_per_minute, token_budget_per_day",
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
    )
    assert row is not None
    return NewKey(Principal(key_id=row.pop("id"), **_principal_fields(row)), secret)


def revoke_key(conn: Conn, *, key_id: str, owner_id: str) -> bool | None:
    """Revoke the owner's key: True if it was live, False if already revoked, None if unknown.

    Instances that cached the key keep accepting it until their cache entry
    expires (`KeyCache`, at most its TTL); the caller forgets its own cache.
    """
    row = conn.one(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE id = :id AND owner_id = :owner AND revoked_at IS NULL RETURNING id",
        id=key_id,
        owner=owner_id,
    )
    if row is not None:
        return True
    known = conn.one(
        "SELECT id FROM api_keys WHERE id = :id AND owner_id = :owner", id=key_id, owner=owner_id
    )
    return False if known is not None else None


def rotate_key(conn: Conn, *, key_id: str, owner_id: str) -> NewKey | None:
    """Give the owner's live key a new secret (same id, role and limits); None if unknown
    or revoked. The old secret stops working as `revoke_key`'s does."""
    secret = new_secret()
    row = conn.one(
        "UPDATE api_keys SET secret_hash = :hash, prefix = :prefix, rotated_at = now()"
        " WHERE id = :id AND owner_id = :owner AND revoked_at IS NULL"
        " RETURNING id, owner_id, name, role, prefix, rate_limit_requests, rate_limit_window,"
        " token_budget_per_minute, token_budget_per_day",
        hash=hash_key(secret),
        prefix=secret[:_VISIBLE],
        id=key_id,
        owner=owner_id,
    )
    if row is None:
        return None
    return NewKey(Principal(key_id=row.pop("id"), **_principal_fields(row)), secret)


def _principal_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "owner_id": row["owner_id"],
        "name": row["name"],
        "role": row["role"],
        "prefix": row["prefix"],
        "rate_limit_requests": row["rate_limit_requests"],
        "rate_limit_window": row["rate_limit_window"],
        "token_budget_per_minute": row["token_budget_per_minute"],
        "token_budget_per_day": row["token_budget_per_day"],
    }


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
            row = conn.one(
                "UPDATE api_keys SET last_used_at = now()"
                " WHERE secret_hash = :h AND revoked_at IS NULL"
                " RETURNING id, owner_id, name, role, prefix, rate_limit_requests,"
                " rate_limit_window, token_budget_per_minute, token_budget_per_day",
                h=digest,
            )
        if row is None:
            return None
        return Principal(key_id=row.pop("id"), **_principal_fields(row))

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.keys")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-admin", help="create an admin key and print it once")
    create.add_argument("--owner", required=True, help="the tenant the key belongs to")
    create.add_argument("--name", default="bootstrap admin")
    args = parser.parse_args(argv)

    from shared.container import get_container

    with get_container().pool.transaction() as conn:
        key = create_key(conn, owner_id=args.owner, name=args.name, role="admin")
    print(key.secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Keys against the real database: stored only as a hash, revocation on every instance,
and each role's reach through the real function apps."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from shared.container import Container
from shared.errors import Unauthorized
from shared.tenancy.keys import KeyCache, create_key, revoke_key, rotate_key
from tests.support import bearer, client, error_code, make_key

OWNER = "tenant-keys"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


def _every_stored_value(container: Container) -> list[Any]:
    """Every value of every column of every table in the gateway's schema."""
    with container.pool.connection() as conn:
        tables = [
            row["table_name"]
            for row in conn.all(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        return [
            value
            for t in tables
            for row in conn.all(f'SELECT * FROM "{t}"')
            for value in row.values()
        ]


def test_the_database_holds_only_the_hash_and_a_short_prefix(container: Container) -> None:
    """An issued key is stored as SHA-256 plus 12 visible characters; no table holds the rest."""
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    answer = client("admin").post(
        "/gateway/v1/keys", json={"name": "made by api", "role": "user"}, headers=bearer(admin)
    )
    assert answer.status_code == 200
    made = answer.get_json()
    secret = made["secret"]
    assert "secret_hash" not in made["key"]
    assert made["key"]["prefix"] == secret[:12]
    with container.pool.connection() as conn:
        row = conn.one(
            "SELECT prefix, secret_hash FROM api_keys WHERE id = :id", id=made["key"]["id"]
        )
    assert row == {"prefix": secret[:12], "secret_hash": hashlib.sha256(secret.encode()).digest()}
    hidden = secret[12:]
    chunks = [hidden[i : i + 8] for i in range(0, len(hidden) - 7)]
    for value in _every_stored_value(container):
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        assert secret not in text
        assert not any(chunk in text for chunk in chunks), f"part of the key stored: {text}"


def test_the_key_listing_shows_neither_secret_nor_hash(container: Container) -> None:
    """Listing keys gives ids, prefixes and limits: never a secret or its hash."""
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    other = make_key(container, "user", OWNER)
    answer = client("admin").get("/gateway/v1/keys", headers=bearer(admin))
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    for key in (admin, other):
        assert key.secret not in text
        assert key.secret[12:20] not in text
        assert hashlib.sha256(key.secret.encode()).hexdigest() not in text
    assert "secret_hash" not in text


POLL_S = 0.005


def test_a_revoked_or_rotated_key_is_refused_within_5s_on_every_instance(
    container: Container,
) -> None:
    """Two instances caching a revoked and a rotated key refuse both within 5 s of the change."""
    ttl = container.settings.revocation_cache_s
    assert ttl <= 5
    instances = [KeyCache(lambda: container.pool, ttl_s=ttl) for _ in range(2)]
    with container.pool.transaction() as conn:
        revoked = create_key(conn, owner_id=OWNER, name="revoked", role="user")
        rotated = create_key(conn, owner_id=OWNER, name="rotated", role="user")
    secrets = [revoked.secret, rotated.secret]
    for instance in instances:
        for secret in secrets:
            instance.resolve(secret)
    with container.pool.transaction() as conn:
        assert revoke_key(conn, key_id=revoked.principal.key_id, owner_id=OWNER) is True
        assert rotate_key(conn, key_id=rotated.principal.key_id, owner_id=OWNER) is not None
    changed_at = time.monotonic()
    last_accepted = {(i, s): 0.0 for i in range(len(instances)) for s in secrets}
    first_refused: dict[tuple[int, str], float] = {}
    while len(first_refused) < len(last_accepted):
        for i, instance in enumerate(instances):
            for secret in secrets:
                if (i, secret) in first_refused:
                    # Once refused, refused for good.
                    with pytest.raises(Unauthorized):
                        instance.resolve(secret)
                    continue
                asked = time.monotonic() - changed_at
                try:
                    instance.resolve(secret)
                except Unauthorized:
                    first_refused[(i, secret)] = asked
                else:
                    last_accepted[(i, secret)] = asked
        assert time.monotonic() - changed_at < ttl + 1, "an instance still accepts a key"
        time.sleep(POLL_S)
    assert max(last_accepted.values()) < 5.0
    # Seen refused at the first look after the TTL ran out.
    assert max(first_refused.values()) <= 5.0 + POLL_S + 0.05


def test_a_revoked_key_is_refused_at_once_on_the_instance_that_revoked_it(
    container: Container,
) -> None:
    """The admin function forgets its own cache on revoke: the next request is 401 at once."""
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    victim = make_key(container, "user", OWNER, **NO_LIMIT)
    app = client("history")
    assert app.get("/v1/conversations", headers=bearer(victim)).status_code == 200
    revoked = client("admin").post(
        f"/gateway/v1/keys/{victim.principal.key_id}/revoke", headers=bearer(admin)
    )
    assert revoked.status_code == 200
    assert app.get("/v1/conversations", headers=bearer(victim)).status_code == 401


# -- each role through the real apps: 403 or not ---------------------------------------------------

# (function, method, path, body) -> the roles that may; the others must get 403. A request
# a role may make is refused for another reason here (no body, no object) or succeeds:
# anything but 403 shows the role check let it through.
SPOT_CHECKS: list[tuple[str, str, str, Any, frozenset[str]]] = [
    ("history", "GET", "/v1/conversations", None, frozenset({"admin", "user", "read_only"})),
    ("start", "POST", "/v1/conversations", {}, frozenset({"admin", "user"})),
    ("start", "POST", "/v1/conversations/conv_x/restart", {}, frozenset({"admin", "user"})),
    ("admin", "GET", "/v1/agents", None, frozenset({"admin", "user"})),
    ("admin", "POST", "/v1/agents", {}, frozenset({"admin"})),
    ("admin", "DELETE", "/v1/agents/ag_x", None, frozenset({"admin"})),
    ("admin", "DELETE", "/v1/conversations/conv_x", None, frozenset({"admin"})),
    (
        "admin",
        "POST",
        "/gateway/v1/conversations/conv_x/archive",
        None,
        frozenset({"admin", "user"}),
    ),
    ("admin", "GET", "/gateway/v1/keys", None, frozenset({"admin"})),
    ("admin", "GET", "/gateway/v1/usage", None, frozenset({"admin", "user", "read_only"})),
]


@pytest.mark.parametrize("role", ["admin", "user", "read_only"])
def test_each_role_is_refused_exactly_what_it_may_not_do(container: Container, role: str) -> None:
    """Through the real apps: 403 exactly where the role lacks the action."""
    key = make_key(container, role, OWNER, **NO_LIMIT)
    for function, method, path, body, allowed in SPOT_CHECKS:
        answer = client(function).open(path, method=method, json=body, headers=bearer(key))
        if role in allowed:
            assert answer.status_code != 403, (role, method, path)
            assert answer.status_code < 500, (role, method, path, answer.get_data(as_text=True))
        else:
            assert answer.status_code == 403, (role, method, path)
            assert error_code(answer.get_json()) == "forbidden"

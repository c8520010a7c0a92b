"""Attacks on keys and roles: escalation, forged, truncated, revoked and rotated keys,
and what can honestly be said about timing.

Keys are `mgw_` + 43 URL-safe characters (256 random bits). The gateway stores only
their SHA-256 digest and finds a key by looking that digest up in PostgreSQL
(`api_keys.secret_hash`, a unique index); no secret is ever compared as a string in
Python. So a near-miss key (right prefix, wrong tail) costs the same as any wrong key:
its digest shares nothing with the real one beyond chance, and the database compares
digests. What a test can assert: (1) no comparison operator in `shared/` touches a
secret, (2) digests of near-miss keys share no more prefix with the real digest than
random ones, (3) resolving near-miss keys takes no longer than resolving random ones,
within the noise of a loaded machine. It cannot prove constant time at the nanosecond
level: PostgreSQL's btree comparison of two digests is a memcmp.
"""

from __future__ import annotations

import ast
import hashlib
import secrets
import statistics
import time
from pathlib import Path

import httpx2
import pytest

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant
from shared.config import Settings
from shared.container import Container
from shared.tenancy.keys import KeyCache, hash_key
from tests.support import ROOT, error_code

MODEL = "mistral-small-latest"
SUITE = "attacks: keys and roles"


@pytest.fixture(scope="module")
def user(fstack: FaultStack) -> Tenant:
    return fstack.tenant("rel-keys")


@pytest.fixture(scope="module")
def admin(fstack: FaultStack) -> Tenant:
    return fstack.tenant("rel-keys", "admin")


@pytest.fixture(scope="module")
def reader(fstack: FaultStack) -> Tenant:
    return fstack.tenant("rel-keys", "read_only")


def test_user_and_read_only_keys_cannot_escalate(
    fstack: FaultStack, user: Tenant, reader: Tenant
) -> None:
    """User and read-only keys get 403 for every key, agent and delete operation."""
    attempts = []
    for key in (user, reader):
        attempts += [
            (key, "POST", "/gateway/v1/keys", {"name": "root", "role": "admin"}),
            (key, "POST", "/gateway/v1/keys", {"name": "x", "role": "user", "owner_id": "other"}),
            (key, "PATCH", f"/gateway/v1/keys/{key.key_id}", {"rate_limit_requests": 10**9}),
            (key, "PATCH", f"/gateway/v1/keys/{key.key_id}", {"role": "admin"}),
            (key, "POST", f"/gateway/v1/keys/{key.key_id}/rotate", None),
            (key, "POST", f"/gateway/v1/keys/{key.key_id}/revoke", None),
            (key, "GET", "/gateway/v1/keys", None),
            (key, "POST", "/v1/agents", {"name": "mine", "model": MODEL}),
            (key, "DELETE", "/v1/conversations/conv_any", None),
        ]
    attempts.append((reader, "POST", "/v1/conversations", {"inputs": "x", "model": MODEL}))
    statuses = []
    with fstack.client() as client:
        for key, method, path, body in attempts:
            answer = client.request(method, path, json=body, headers=key.headers)
            statuses.append(answer.status_code)
            assert answer.status_code == 403, (key.role, method, path)
            assert error_code(answer.json()) == "forbidden"
    figures.add("attack_inputs", len(statuses))
    figures.scenario(
        SUITE, "role escalation by user and read-only keys", answers=status_counts(statuses)
    )
    rows = fstack.rows(
        "SELECT role, rate_limit_requests, revoked_at, rotated_at FROM api_keys"
        " WHERE id = ANY(:ids)",
        ids=[user.key_id, reader.key_id],
    )
    assert sorted(r["role"] for r in rows) == ["read_only", "user"]
    assert all(r["rate_limit_requests"] is None and r["revoked_at"] is None for r in rows)
    assert all(r["rotated_at"] is None for r in rows)
    assert fstack.rows("SELECT id FROM api_keys WHERE name = 'root'") == []


def test_patch_cannot_change_a_role_or_an_owner(
    fstack: FaultStack, admin: Tenant, user: Tenant
) -> None:
    """PATCH cannot change a key's role or owner, even for an admin (422)."""
    statuses = []
    for body in ({"role": "admin"}, {"owner_id": "elsewhere"}, {"secret_hash": "00"}):
        answer = httpx2.patch(
            f"{fstack.url}/gateway/v1/keys/{user.key_id}",
            json=body,
            headers=admin.headers,
            timeout=15,
        )
        statuses.append(answer.status_code)
        assert answer.status_code == 422
    figures.add("attack_inputs", len(statuses))
    row = fstack.rows("SELECT role, owner_id FROM api_keys WHERE id = :id", id=user.key_id)
    assert row == [{"role": "user", "owner_id": user.owner}]


def _forgeries(real: str) -> dict[str, str | None]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[(alphabet.index(real[-1]) + 1) % len(alphabet)]
    return {
        "no header": None,
        "empty": "",
        "scheme only": "Bearer",
        "basic auth": "Basic " + real,
        "random key": "Bearer mgw_" + secrets.token_urlsafe(32),
        "last character changed": "Bearer " + real[:-1] + last,
        "truncated by one": "Bearer " + real[:-1],
        "truncated to the prefix": "Bearer " + real[:12],
        "one character more": "Bearer " + real + "A",
        "upper-cased": "Bearer " + real.upper(),
        "other prefix": "Bearer sk_" + real[4:],
        "digest instead of key": "Bearer " + hash_key(real).hex(),
        "two keys": f"Bearer {real} {real}",
        "sql in the key": "Bearer mgw_' OR '1'='1' --" + "x" * 22,
    }


@pytest.mark.parametrize("path", ["/v1/conversations", "/gateway/v1/keys"])
def test_forged_and_truncated_keys_are_401(fstack: FaultStack, admin: Tenant, path: str) -> None:
    """Forged, truncated, extended and reshaped keys answer 401 with WWW-Authenticate."""
    statuses = []
    with fstack.client() as client:
        for name, header in _forgeries(admin.secret).items():
            headers = {} if header is None else {"Authorization": header}
            answer = client.get(path, headers=headers)
            statuses.append(answer.status_code)
            assert answer.status_code == 401, name
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert admin.secret not in answer.text
    figures.add("attack_inputs", len(statuses))
    figures.scenario(SUITE, f"forged keys on {path}", answers=status_counts(statuses))


def _until_refused(client: httpx2.Client, secret: str, limit_s: float) -> float:
    """Seconds until both the start and the history function refuse `secret`."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {secret}"}
    while time.monotonic() - started < limit_s:
        start = client.post("/v1/conversations", json={"model": MODEL}, headers=headers)
        read = client.get("/v1/conversations", headers=headers)
        if start.status_code == read.status_code == 401:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"still accepted after {limit_s}s")


def test_revoked_key_is_refused_everywhere_within_the_cache_ttl(
    fstack: FaultStack, admin: Tenant
) -> None:
    """A revoked key is refused by every function within the revocation cache TTL."""
    victim = fstack.tenant("rel-keys")
    with fstack.client() as client:
        assert client.get("/v1/conversations", headers=victim.headers).status_code == 200
        client.post("/v1/conversations", json={"model": MODEL}, headers=victim.headers)
        revoked = client.post(f"/gateway/v1/keys/{victim.key_id}/revoke", headers=admin.headers)
        assert revoked.status_code == 200
        seconds = _until_refused(client, victim.secret, 5)
    figures.add("attack_inputs")
    figures.scenario(SUITE, "revoked key", refused_after_s=round(seconds, 2))
    assert seconds < 1 + 1.0


def test_rotated_key_old_secret_is_refused_new_one_works(fstack: FaultStack, admin: Tenant) -> None:
    """After a rotation the old secret is refused within the cache TTL; the new one works."""
    victim = fstack.tenant("rel-keys")
    with fstack.client() as client:
        assert client.get("/v1/conversations", headers=victim.headers).status_code == 200
        rotated = client.post(f"/gateway/v1/keys/{victim.key_id}/rotate", headers=admin.headers)
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        seconds = _until_refused(client, victim.secret, 5)
        fresh = client.get("/v1/conversations", headers={"Authorization": f"Bearer {new_secret}"})
    figures.add("attack_inputs")
    figures.scenario(SUITE, "rotated key", refused_after_s=round(seconds, 2))
    assert seconds < 1 + 1.0
    assert new_secret != victim.secret
    assert fresh.status_code == 200


_SECRET_NAMES = ("secret", "token", "api_key", "password", "digest", "bearer")


def _names(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id.lower())
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr.lower())
    return found


def _compares_a_secret(node: ast.Compare) -> bool:
    """An ==, !=, <, >, `in` between a secret and something not a literal. Identity
    (`is None`), a length (len(token) != N) or a literal are not secret comparisons."""
    if all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
        return False
    operands = [node.left, *node.comparators]
    if any(isinstance(o, ast.Constant) for o in operands):
        return False
    for operand in operands:
        if isinstance(operand, ast.Call) and getattr(operand.func, "id", "") == "len":
            continue
        if any(word in name for name in _names(operand) for word in _SECRET_NAMES):
            return True
    return False


# The modules a key passes through, from the Authorization header to the database.
_AUTH_PATH = (
    "tenancy/keys.py",
    "tenancy/auth.py",
    "tenancy/keyadmin.py",
    "http/web.py",
    "container.py",
)


def test_no_secret_is_ever_compared_with_an_operator() -> None:
    """No comparison on the authentication path has a key, token or digest as an operand."""
    offenders = []
    for path in [ROOT / "shared" / name for name in _AUTH_PATH]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and _compares_a_secret(node):
                offenders.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
    # The one lookup: by digest (the current one, or the previous one in its grace window),
    # in SQL.
    source = (ROOT / "shared" / "tenancy" / "keys.py").read_text()
    assert "AND (k.secret_hash = :h" in source
    assert "OR (k.previous_secret_hash = :h AND k.previous_secret_expires_at > now()))" in source


def test_the_secret_check_itself_catches_a_string_comparison() -> None:
    """The secret-comparison scan flags `token == stored_secret` (its silence means something)."""
    tree = ast.parse("ok = token == stored_secret\nn = len(token) != 47\nm = token is None\n")
    flagged = [n for n in ast.walk(tree) if isinstance(n, ast.Compare) and _compares_a_secret(n)]
    assert len(flagged) == 1


def test_the_database_holds_digests_only(fstack: FaultStack, user: Tenant) -> None:
    """api_keys holds a SHA-256 digest and a 12-character prefix, never the key."""
    columns = {
        r["column_name"]
        for r in fstack.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys'"
        )
    }
    digests = {"secret_hash", "previous_secret_hash", "previous_secret_expires_at"}
    assert {c for c in columns if "secret" in c or "key" in c} <= digests
    row = fstack.rows("SELECT secret_hash, prefix FROM api_keys WHERE id = :id", id=user.key_id)[0]
    assert bytes(row["secret_hash"]) == hashlib.sha256(user.secret.encode()).digest()
    assert row["prefix"] == user.secret[:12]


def _common_prefix(a: bytes, b: bytes) -> int:
    n = 0
    while n < len(a) and a[n] == b[n]:
        n += 1
    return n


def test_near_miss_keys_share_no_digest_prefix_and_cost_no_more(
    fstack: FaultStack, user: Tenant
) -> None:
    """Near-miss keys' digests share no prefix with the real one, and cost no more to resolve."""
    real = hash_key(user.secret)
    near = [user.secret[:42] + secrets.token_urlsafe(4)[:5] for _ in range(400)]
    far = ["mgw_" + secrets.token_urlsafe(32) for _ in range(400)]
    mean_near = statistics.mean(_common_prefix(hash_key(k), real) for k in near)
    mean_far = statistics.mean(_common_prefix(hash_key(k), real) for k in far)
    assert mean_near < 0.05
    assert abs(mean_near - mean_far) < 0.05

    container = Container(Settings(database_url=fstack.info.database_url))
    keys = KeyCache(lambda: container.pool, ttl_s=0)
    timings: dict[str, list[float]] = {"near": [], "far": []}
    try:
        for near_key, far_key in zip(near[:150], far[:150], strict=True):
            for name, key in (("near", near_key), ("far", far_key)):
                started = time.perf_counter()
                with pytest.raises(Exception, match="unknown or revoked"):
                    keys.resolve(key)
                timings[name].append(time.perf_counter() - started)
    finally:
        container.close()
    ratio = statistics.median(timings["near"]) / statistics.median(timings["far"])
    figures.add("attack_inputs", 800 + 300)
    figures.scenario(SUITE, "near-miss key timing", median_ratio=round(ratio, 3))
    assert ratio < 1.5

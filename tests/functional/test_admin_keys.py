"""The keys API: created and shown once, listed without secrets, limited, revoked, rotated."""

from __future__ import annotations

from typing import Any

import pytest

from shared.container import Container
from shared.errors import Unauthorized
from shared.tenancy.keys import KeyCache, NewKey
from tests.support import bearer, client, make_key

OWNER = "tenant-a"
OTHER = "tenant-b"
KEYS = "/gateway/v1/keys"
USAGE = "/gateway/v1/usage"


@pytest.fixture
def admin(container: Container) -> NewKey:
    return make_key(container, "admin", OWNER, rate_limit_requests=1000, rate_limit_window=60)


def new_key(admin: NewKey, **fields: Any) -> dict[str, Any]:
    answer = client("admin").post(
        KEYS, json={"name": "worker", "role": "user", **fields}, headers=bearer(admin)
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_created_key_is_shown_once_and_works(container: Container, admin: NewKey) -> None:
    """The answer holds the secret and the record; the secret authenticates as that key."""
    made = new_key(admin, rate_limit_requests=5, token_budget_per_day=1000)
    key, secret = made["key"], made["secret"]
    assert secret.startswith("mgw_")
    assert secret.startswith(key["prefix"])
    assert key["role"] == "user"
    assert key["owner_id"] == OWNER
    assert (key["rate_limit_requests"], key["token_budget_per_day"]) == (5, 1000)
    assert (key["revoked"], key["last_used_at"]) == (False, None)
    answer = client("admin").get(USAGE, headers=auth(secret))
    assert answer.status_code == 200
    assert answer.headers["RateLimit-Limit"] == "5"


def test_allow_list_entries_are_kept_as_written(container: Container, admin: NewKey) -> None:
    """Model names spelled like SQL's null, with quotes, braces or backslashes, come back as
    the same strings on create and update (pg8000 sent an unquoted `null` as NULL)."""
    odd = ["null", "Null", 'say "hi"', "{a,b}", "back\\slash", "NULL"]
    made = new_key(admin, allowed_models=odd)
    assert sorted(made["key"]["allowed_models"]) == sorted(odd)
    answer = client("admin").patch(
        f"{KEYS}/{made['key']['id']}", json={"allowed_models": odd[:3]}, headers=bearer(admin)
    )
    assert answer.status_code == 200
    assert sorted(answer.get_json()["allowed_models"]) == sorted(odd[:3])


def test_the_list_shows_the_tenants_keys_without_secrets(
    container: Container, admin: NewKey
) -> None:
    """The list shows the tenant's keys with their details, never a secret or hash."""
    made = new_key(admin)
    make_key(container, "admin", OTHER)
    client("admin").get(USAGE, headers=auth(made["secret"]))
    answer = client("admin").get(KEYS, headers=bearer(admin))
    text = answer.get_data(as_text=True)
    listed = answer.get_json()["data"]
    assert {k["id"] for k in listed} == {admin.principal.key_id, made["key"]["id"]}
    assert all(k["owner_id"] == OWNER for k in listed)
    assert made["secret"] not in text
    assert admin.secret not in text
    assert '"secret"' not in text
    assert "hash" not in text
    worker = next(k for k in listed if k["id"] == made["key"]["id"])
    assert worker["last_used_at"] is not None
    assert set(worker) >= {"prefix", "name", "role", "created_at", "revoked", "revoked_at"}


def test_the_list_pages_with_a_cursor(container: Container, admin: NewKey) -> None:
    """limit=2 over five keys walks them all, oldest first, and ends with a null token."""
    ids = [admin.principal.key_id] + [new_key(admin, name=f"k{i}")["key"]["id"] for i in range(4)]
    seen: list[str] = []
    token = None
    while True:
        query = {"limit": "2", **({"cursor": token} if token else {})}
        page = client("admin").get(KEYS, query_string=query, headers=bearer(admin)).get_json()
        seen += [k["id"] for k in page["data"]]
        token = page["next_cursor"]
        if token is None:
            break
    assert seen == ids


def test_an_operator_may_create_a_key_for_another_tenant(
    container: Container, admin: NewKey
) -> None:
    """An operator's owner_id provisions another tenant; that key acts in that tenant only."""
    operator = make_key(container, "operator", "operators")
    existing = make_key(container, "read_only", OTHER)  # the tenant exists
    made = new_key(operator, owner_id=OTHER, role="admin")
    assert made["key"]["owner_id"] == OTHER
    theirs = client("admin").get(KEYS, headers=auth(made["secret"])).get_json()["data"]
    assert {k["id"] for k in theirs} == {existing.principal.key_id, made["key"]["id"]}
    mine = client("admin").get(KEYS, headers=bearer(admin)).get_json()["data"]
    assert made["key"]["id"] not in {k["id"] for k in mine}


@pytest.mark.parametrize(
    "body",
    [
        {"role": "user"},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "user", "rate_limit_requests": 0},
        {"name": "x", "role": "user", "rate_limit_window": "60"},
        {"name": "x", "role": "user", "token_budget_per_day": True},
        {"name": "x", "role": "user", "rate_limit": 5},
        {"name": "", "role": "user"},
    ],
)
def test_bad_key_fields_are_422(container: Container, admin: NewKey, body: dict[str, Any]) -> None:
    """Missing name, unknown role, out-of-range or mistyped limits and unknown fields: 422."""
    answer = client("admin").post(KEYS, json=body, headers=bearer(admin))
    assert answer.status_code == 422
    assert answer.get_json()["detail"]


def test_new_limits_apply_at_once(container: Container, admin: NewKey) -> None:
    """PATCH sets a one-request limit: the key's next two requests are one 200 and one 429."""
    made = new_key(admin)
    answer = client("admin").patch(
        f"{KEYS}/{made['key']['id']}",
        json={"rate_limit_requests": 1, "rate_limit_window": 60, "token_budget_per_minute": None},
        headers=bearer(admin),
    )
    assert answer.status_code == 200
    assert answer.get_json()["rate_limit_requests"] == 1
    statuses = [client("admin").get(USAGE, headers=auth(made["secret"])).status_code for _ in "ab"]
    assert statuses == [200, 429]


def test_a_revoked_key_is_401_at_once_here(container: Container, admin: NewKey) -> None:
    """After revoke the key fails on the instance that revoked it, and is listed as revoked."""
    made = new_key(admin)
    assert client("admin").get(USAGE, headers=auth(made["secret"])).status_code == 200
    answer = client("admin").post(f"{KEYS}/{made['key']['id']}/revoke", headers=bearer(admin))
    assert answer.status_code == 200
    assert answer.get_json()["revoked"] is True
    assert client("admin").get(USAGE, headers=auth(made["secret"])).status_code == 401
    again = client("admin").post(f"{KEYS}/{made['key']['id']}/revoke", headers=bearer(admin))
    assert again.get_json()["revoked_at"] == answer.get_json()["revoked_at"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_other_instances_stop_accepting_the_old_secret_within_5_seconds(
    container: Container, admin: NewKey, action: str
) -> None:
    """An instance that cached the key refuses it 5 s after a revoke or rotation."""
    made = new_key(admin)
    clock = Clock()
    ttl = container.settings.revocation_cache_s
    assert ttl <= 5
    elsewhere = KeyCache(lambda: container.pool, ttl_s=ttl, clock=clock)
    assert elsewhere.resolve(made["secret"]).key_id == made["key"]["id"]
    answer = client("admin").post(f"{KEYS}/{made['key']['id']}/{action}", headers=bearer(admin))
    assert answer.status_code == 200
    clock.now += ttl - 0.01
    elsewhere.resolve(made["secret"])
    clock.now += 0.01
    with pytest.raises(Unauthorized):
        elsewhere.resolve(made["secret"])


def test_rotation_keeps_the_record_and_replaces_the_secret(
    container: Container, admin: NewKey
) -> None:
    """Rotate: same id, role and limits; the new secret works, the old one is 401 at once."""
    made = new_key(admin, rate_limit_requests=9)
    old = made["secret"]
    assert client("admin").get(USAGE, headers=auth(old)).status_code == 200
    answer = client("admin").post(f"{KEYS}/{made['key']['id']}/rotate", headers=bearer(admin))
    rotated = answer.get_json()
    assert rotated["key"]["id"] == made["key"]["id"]
    assert rotated["key"]["rate_limit_requests"] == 9
    assert rotated["key"]["rotated_at"] is not None
    assert rotated["secret"] != old
    assert rotated["key"]["prefix"] == rotated["secret"][:12]
    assert client("admin").get(USAGE, headers=auth(old)).status_code == 401
    assert client("admin").get(USAGE, headers=auth(rotated["secret"])).status_code == 200


def test_a_revoked_key_cannot_be_rotated(container: Container, admin: NewKey) -> None:
    """Rotating a revoked key is 409: revocation is final."""
    made = new_key(admin)
    client("admin").post(f"{KEYS}/{made['key']['id']}/revoke", headers=bearer(admin))
    answer = client("admin").post(f"{KEYS}/{made['key']['id']}/rotate", headers=bearer(admin))
    assert answer.status_code == 409


def test_another_tenants_key_is_404(container: Container, admin: NewKey) -> None:
    """Update, revoke and rotate of another tenant's key answer 404 and change nothing."""
    theirs = make_key(container, "user", OTHER)
    key_id = theirs.principal.key_id
    app = client("admin")
    attempts = [
        app.patch(f"{KEYS}/{key_id}", json={"name": "mine"}, headers=bearer(admin)),
        app.post(f"{KEYS}/{key_id}/revoke", headers=bearer(admin)),
        app.post(f"{KEYS}/{key_id}/rotate", headers=bearer(admin)),
    ]
    assert [a.status_code for a in attempts] == [404, 404, 404]
    assert app.get(USAGE, headers=bearer(theirs)).status_code == 200

"""The console's server side: its static files, `GET /gateway/v1/whoami`, usage per hour."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from deploy.bundle import bundle_entries
from shared.container import Container, set_container
from shared.tenancy.auth import OPERATION_PERMISSIONS, may
from shared.tenancy.keys import ROLES
from tests.support import ROOT, bearer, client, error_code, make_key

CONSOLE = "/gateway/v1/console"
FILES = ROOT / "functions" / "admin" / "console"


@pytest.fixture
def gateway(container: Container) -> Iterator[Container]:
    previous = set_container(container)
    yield container
    set_container(previous)


# -- the static files -----------------------------------------------------------------------------


def test_the_shell_is_served_to_anyone_with_a_self_only_policy() -> None:
    """No key needed for the page; its policy lets it load and call nothing but the gateway."""
    answer = client("admin").get(CONSOLE)
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_every_file_the_console_names_is_served_with_its_type() -> None:
    """Each script and style sheet the page or a module imports answers 200, typed."""
    page = client("admin").get(CONSOLE).get_data(as_text=True)
    named = set(re.findall(r'(?:src|href)="/gateway/v1/console/([^"]+)"', page))
    for module in FILES.glob("*.js"):
        named |= set(re.findall(r'from "\./([^"]+)"', module.read_text()))
    assert {"app.js", "style.css", "api.js", "chart.js", "views.js"} <= named
    types = {".js": "text/javascript", ".css": "text/css"}
    for name in named:
        answer = client("admin").get(f"{CONSOLE}/{name}")
        assert answer.status_code == 200, name
        assert answer.mimetype == types[name[name.rindex(".") :]]


def test_nothing_but_the_console_files_is_served() -> None:
    """A missing file, a non-asset file and a path out of the folder are 404 in the error shape."""
    for path in ("nothing.js", "..%2Fmain.py", "main.py", "%2E%2E%2Fmain.py", "index"):
        answer = client("admin").get(f"{CONSOLE}/{path}")
        assert answer.status_code == 404, path
        assert error_code(answer.get_json()) in ("not_found", "route_not_found")


def test_no_console_file_names_another_origin() -> None:
    """No URL of another host is written in any console file (everything ships in the bundle)."""
    for path in FILES.iterdir():
        # The SVG namespace is a name, never fetched.
        text = path.read_text().replace('"http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name


def test_the_admin_bundle_carries_every_console_file() -> None:
    """The deploy bundle of the admin function holds the console, so it works offline."""
    entries = bundle_entries("admin")
    for path in FILES.iterdir():
        assert entries[f"console/{path.name}"] == path


# -- whoami ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_whoami_lists_exactly_what_the_role_may_call(gateway: Container, role: str) -> None:
    """The operations are those of the one permission table, and the key is the caller's."""
    key = make_key(gateway, role, "tenant-whoami")
    body = client("admin").get("/gateway/v1/whoami", headers=bearer(key)).get_json()
    assert body["operations"] == sorted(op for op in OPERATION_PERMISSIONS if may(role, op))
    assert (body["key_id"], body["owner_id"], body["role"]) == (
        key.principal.key_id,
        "tenant-whoami",
        role,
    )
    assert ("gateway.keys.create" in body["operations"]) is (role in ("operator", "admin"))


def test_whoami_gives_the_limits_in_force(gateway: Container) -> None:
    """A key's own limits narrow the tenant's; without them, the deployment's apply."""
    settings = gateway.settings
    plain = make_key(gateway, "user", "tenant-whoami")
    narrow = make_key(gateway, "user", "tenant-whoami", rate_limit_requests=5, rate_limit_window=60)
    seen = {
        name: client("admin").get("/gateway/v1/whoami", headers=bearer(k)).get_json()["limits"]
        for name, k in (("plain", plain), ("narrow", narrow))
    }
    assert seen["plain"]["rate_limit_requests"] == settings.rate_limit_requests
    assert seen["plain"]["token_budget_per_day"] == settings.token_budget_per_day
    assert (seen["narrow"]["rate_limit_requests"], seen["narrow"]["rate_limit_window"]) == (5, 60)


def test_whoami_holds_the_tenants_daily_budget_unless_the_key_narrows_it(
    gateway: Container,
) -> None:
    """The console's usage page shows whoami's daily budget instead of asking for the tenant:
    for a key without its own, it is the tenant's figure; a key's lower one is its own."""
    operator = make_key(gateway, "operator", "operators")
    made = client("admin").post(
        "/gateway/v1/tenants",
        json={"id": "tenant-budgeted", "name": "Budgeted", "token_budget_per_day": 70_000},
        headers=bearer(operator),
    )
    assert made.status_code == 200, made.get_json()
    plain = make_key(gateway, "admin", "tenant-budgeted")
    lower = make_key(gateway, "user", "tenant-budgeted", token_budget_per_day=500)
    tenant = client("admin").get("/gateway/v1/tenants/tenant-budgeted", headers=bearer(plain))
    day = {
        name: client("admin")
        .get("/gateway/v1/whoami", headers=bearer(k))
        .get_json()["limits"]["token_budget_per_day"]
        for name, k in (("plain", plain), ("lower", lower))
    }
    assert day == {"plain": tenant.get_json()["token_budget_per_day"], "lower": 500}
    assert day["plain"] == 70_000


def test_whoami_without_a_key_is_401(gateway: Container) -> None:
    """whoami is keyed: no key, no answer."""
    answer = client("admin").get("/gateway/v1/whoami")
    assert answer.status_code == 401


# -- usage per hour --------------------------------------------------------------------------------


def test_usage_groups_by_hour_in_utc(gateway: Container) -> None:
    """Events in two hours of one day are two hour rows, each the sum of its own events."""
    key = make_key(gateway, "read_only", "tenant-hours")
    with gateway.pool.transaction() as conn:
        for minute, hour, tokens in ((5, 9, 10), (50, 9, 20), (1, 10, 40)):
            conn.run(
                "INSERT INTO usage_events (owner_id, operation, model, status, prompt_tokens,"
                " completion_tokens, created_at) VALUES ('tenant-hours', 'conversations.start',"
                " 'm', 200, :p, 0, :t)",
                p=tokens,
                t=datetime(2025, 6, 1, hour, minute, tzinfo=UTC),
            )
    query = {"from": "2025-06-01", "to": "2025-06-01", "group_by": "day,hour"}
    body = client("admin").get("/gateway/v1/usage", query_string=query, headers=bearer(key))
    rows = [
        (r["day"], r["hour"], r["requests"], r["prompt_tokens"]) for r in body.get_json()["data"]
    ]
    assert rows == [
        ("2025-06-01", "2025-06-01T09:00:00Z", 2, 30),
        ("2025-06-01", "2025-06-01T10:00:00Z", 1, 40),
    ]

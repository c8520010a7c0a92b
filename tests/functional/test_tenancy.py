"""Tenancy (issue 15): the escalation closed, the audit log, tenants and their limits."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pg8000.exceptions
import pytest

from deploy.grants import grant_statements
from shared.container import Container
from shared.observability import capture_logs
from shared.tenancy import audit
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

A, B = "default", "tenant-b"
KEYS = "/gateway/v1/keys"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


@pytest.fixture
def operator(container: Container) -> NewKey:
    return make_key(container, "operator", "operators", **NO_LIMIT)


def _post(key: NewKey, path: str, body: dict[str, Any] | None = None) -> Any:
    return client("admin").post(path, json=body, headers=bearer(key))


def test_a_tenants_admin_cannot_make_a_key_in_another_tenant(container: Container) -> None:
    """B's admin asking for a key in 'default' gets 404, and no key of 'default' appears."""
    make_key(container, "admin", A)
    b_admin = make_key(container, "admin", B, **NO_LIMIT)
    answer = _post(b_admin, KEYS, {"name": "x", "role": "admin", "owner_id": A})
    assert answer.status_code == 404
    assert error_code(answer.get_json()) == "not_found"
    with container.pool.connection() as conn:
        assert conn.run("SELECT count(*) FROM api_keys WHERE owner_id = :o", o=A) == [[1]]


def test_no_key_of_b_reads_anything_of_a(container: Container) -> None:
    """B's admin reads none of A's keys, usage, audit or tenant: each is 404 or B's own."""
    a_admin = make_key(container, "admin", A, **NO_LIMIT)
    b_admin = make_key(container, "admin", B, **NO_LIMIT)
    app = client("admin")
    assert app.get(KEYS, query_string={"owner_id": A}, headers=bearer(b_admin)).status_code == 404
    usage = app.get("/gateway/v1/usage", query_string={"owner_id": A}, headers=bearer(b_admin))
    assert usage.status_code == 404
    logged = app.get("/gateway/v1/audit", query_string={"tenant_id": A}, headers=bearer(b_admin))
    assert logged.status_code == 404
    assert app.get(f"/gateway/v1/tenants/{A}", headers=bearer(b_admin)).status_code == 404
    own = app.get(KEYS, headers=bearer(b_admin)).get_json()["data"]
    assert a_admin.principal.key_id not in {k["id"] for k in own}


def test_an_admin_cannot_make_an_operator_key(container: Container) -> None:
    """role 'operator' from an admin is 403: only an operator makes operator keys."""
    admin = make_key(container, "admin", A, **NO_LIMIT)
    answer = _post(admin, KEYS, {"name": "x", "role": "operator"})
    assert answer.status_code == 403


def test_an_operator_key_reads_no_conversation(container: Container, operator: NewKey) -> None:
    """An operator key gets 403 on conversation reads and writes, and on agents."""
    for function, path in (
        ("history", "/v1/conversations"),
        ("history", "/gateway/v1/conversations"),
        ("admin", "/v1/agents"),
    ):
        assert client(function).get(path, headers=bearer(operator)).status_code == 403


def test_onboarding_a_team(container: Container, operator: NewKey) -> None:
    """The operator creates a tenant and its first admin key; that admin works inside it."""
    made = _post(operator, "/gateway/v1/tenants", {"id": "team-x", "name": "Team X"})
    assert made.status_code == 200
    assert made.get_json()["disabled"] is False
    key = _post(operator, KEYS, {"name": "first", "role": "admin", "owner_id": "team-x"})
    assert key.status_code == 200
    secret = key.get_json()["secret"]
    mine = client("admin").get("/gateway/v1/tenants/team-x", headers=_auth(secret))
    assert mine.get_json()["id"] == "team-x"
    assert (
        _post(operator, KEYS, {"name": "x", "role": "user", "owner_id": "nope"}).status_code == 404
    )


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_disabled_tenants_keys_answer_401(container: Container, operator: NewKey) -> None:
    """After an operator disables a tenant its keys are 401; enabled again, they work."""
    user = make_key(container, "read_only", B)
    usage = "/gateway/v1/usage"
    assert client("admin").get(usage, headers=bearer(user)).status_code == 200
    off = client("admin").patch(
        f"/gateway/v1/tenants/{B}", json={"disabled": True}, headers=bearer(operator)
    )
    assert off.status_code == 200
    container.keys.forget()  # the revocation delay, here elapsed at once
    assert client("admin").get(usage, headers=bearer(user)).status_code == 401
    client("admin").patch(
        f"/gateway/v1/tenants/{B}", json={"disabled": False}, headers=bearer(operator)
    )
    container.keys.forget()
    assert client("admin").get(usage, headers=bearer(user)).status_code == 200


def test_only_an_operator_sets_a_tenants_limits(container: Container, operator: NewKey) -> None:
    """An admin's PATCH of its tenant is 403; the operator's sets the limit."""
    admin = make_key(container, "admin", B, **NO_LIMIT)
    body = {"token_budget_per_day": 100}
    path = f"/gateway/v1/tenants/{B}"
    assert client("admin").patch(path, json=body, headers=bearer(admin)).status_code == 403
    done = client("admin").patch(path, json=body, headers=bearer(operator))
    assert done.get_json()["token_budget_per_day"] == 100


def test_a_key_narrows_but_never_widens_its_tenants_budget(container: Container) -> None:
    """Tenant budget 1,000/day: a key with 0 (none) or 5,000 gets 1,000; one with 10 gets 10."""
    from shared.tenancy.tenants import effective_limits

    settings = container.settings
    key = make_key(container, "user", B)
    with container.pool.transaction() as conn:
        conn.run("UPDATE tenants SET token_budget_per_day = 1000 WHERE id = :id", id=B)
    principal = container.keys.resolve(key.secret)
    for key_budget, expected in ((0, 1000), (None, 1000), (5000, 1000), (10, 10)):
        narrowed = dataclasses.replace(principal, token_budget_per_day=key_budget)
        assert effective_limits(narrowed, settings)[1].per_day == expected


def test_a_key_with_no_budget_cannot_spend_past_its_tenants(container: Container) -> None:
    """A key made with token_budget_per_day 0 is refused (429) once the tenant's is spent."""
    key = make_key(container, "user", B, token_budget_per_day=0, **NO_LIMIT)
    with container.pool.transaction() as conn:
        conn.run("UPDATE tenants SET token_budget_per_day = 100 WHERE id = :id", id=B)
    container.keys.forget()
    answer = client("start").post(
        "/v1/conversations",
        json={"model": "mistral-small-latest", "inputs": "x" * 2000},
        headers=bearer(key),
    )
    assert answer.status_code == 429


# -- the audit log ---------------------------------------------------------------------------


def test_every_key_change_is_audited_with_one_log_line(
    container: Container, operator: NewKey
) -> None:
    """create, update, rotate, revoke: four rows (actor, action, target) and four log lines."""
    admin = make_key(container, "admin", B, **NO_LIMIT)
    with capture_logs() as logs:
        created = _post(admin, KEYS, {"name": "w", "role": "user"}).get_json()
        made = created["key"]
        one = f"{KEYS}/{made['id']}"
        client("admin").patch(one, json={"name": "w2"}, headers=bearer(admin))
        rotated = _post(admin, one + "/rotate", {"grace_s": 60}).get_json()
        _post(admin, one + "/revoke")
    lines = [line for line in logs if line.get("event") == "audit"]
    assert [line["action"] for line in lines] == [
        "key.create",
        "key.update",
        "key.rotate",
        "key.revoke",
    ]
    page = client("admin").get("/gateway/v1/audit", headers=bearer(admin)).get_json()
    entries = page["data"]
    assert [e["action"] for e in entries] == [
        "key.revoke",
        "key.rotate",
        "key.update",
        "key.create",
    ]
    assert {e["actor_key_id"] for e in entries} == {admin.principal.key_id}
    assert {e["target_id"] for e in entries} == {made["id"]}
    assert entries[2]["changes"] == {"name": "w2"}
    assert entries[1]["changes"] == {"grace_s": 60}
    text = str(page) + str(logs)
    assert created["secret"] not in text
    assert rotated["secret"] not in text
    theirs = client("admin").get("/gateway/v1/audit", headers=bearer(operator)).get_json()
    assert len(theirs["data"]) >= 4


def test_the_audit_log_filters_and_pages(container: Container, operator: NewKey) -> None:
    """action= filters; limit=1 walks every entry newest first through next_cursor."""
    admin = make_key(container, "admin", B, **NO_LIMIT)
    for name in ("a", "b", "c"):
        _post(admin, KEYS, {"name": name, "role": "user"})
    client("admin").patch(f"/gateway/v1/tenants/{B}", json={"name": "B"}, headers=bearer(operator))
    seen, cursor = [], None
    while True:
        query = {"limit": "1", "tenant_id": B, **({"cursor": cursor} if cursor else {})}
        page = client("admin").get(
            "/gateway/v1/audit", query_string=query, headers=bearer(operator)
        )
        body = page.get_json()
        seen += [e["action"] for e in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["tenant.update", "key.create", "key.create", "key.create"]
    only = client("admin").get(
        "/gateway/v1/audit", query_string={"action": "tenant.update"}, headers=bearer(operator)
    )
    assert [e["action"] for e in only.get_json()["data"]] == ["tenant.update"]


@contextlib.contextmanager
def _failing_audit_inserts(container: Container) -> Iterator[None]:
    """Every audit insert fails (a CHECK no row can meet) until the block ends."""
    with container.pool.connection() as conn:
        conn.run(
            "ALTER TABLE audit_log ADD CONSTRAINT audit_fails CHECK (action = 'never') NOT VALID"
        )
    try:
        yield
    finally:
        with container.pool.connection() as conn:
            conn.run("ALTER TABLE audit_log DROP CONSTRAINT audit_fails")


def test_a_change_whose_audit_row_fails_does_not_happen(container: Container) -> None:
    """With audit inserts failing, a key create and a revoke answer 500 and change nothing."""
    admin = make_key(container, "admin", B, **NO_LIMIT)
    spare = make_key(container, "user", B)
    with _failing_audit_inserts(container):
        made = _post(admin, KEYS, {"name": "ghost", "role": "user"})
        revoked = _post(admin, f"{KEYS}/{spare.principal.key_id}/revoke")
    assert (made.status_code, revoked.status_code) == (500, 500)
    with container.pool.connection() as conn:
        assert conn.run("SELECT count(*) FROM api_keys WHERE name = 'ghost'") == [[0]]
        rows = conn.run("SELECT revoked_at FROM api_keys WHERE id = :id", id=spare.principal.key_id)
        assert rows == [[None]]


def test_audit_rows_cannot_be_updated_or_deleted(container: Container) -> None:
    """UPDATE, DELETE and TRUNCATE of audit_log fail, even for the table's owner."""
    admin = make_key(container, "admin", B, **NO_LIMIT)
    _post(admin, KEYS, {"name": "w", "role": "user"})
    for statement in (
        "UPDATE audit_log SET action = 'key.update'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with container.pool.connection() as conn, pytest.raises(pg8000.exceptions.DatabaseError):
            conn.run(statement)
    with container.pool.connection() as conn:
        assert conn.run("SELECT count(*) FROM audit_log") == [[1]]


def test_the_functions_database_user_lacks_update_and_delete_on_audit(
    container: Container,
) -> None:
    """A user granted as deploy/grants.py grants the functions: no UPDATE/DELETE privilege."""
    role = "gw-test-app@p.iam"
    with container.pool.connection() as conn:
        if not conn.run("SELECT 1 FROM pg_roles WHERE rolname = :r", r=role):
            conn.run(f'CREATE ROLE "{role}"')
        for statement in grant_statements([role]):
            conn.run(statement)
        privileges = {
            p: conn.run("SELECT has_table_privilege(:r, 'audit_log', :p)", r=role, p=p)[0][0]
            for p in ("INSERT", "SELECT", "UPDATE", "DELETE", "TRUNCATE")
        }
    assert privileges == {
        "INSERT": True,
        "SELECT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
    }


def test_the_command_line_makes_an_operator_key(container: Container) -> None:
    """`python -m shared.tenancy create-operator` prints only a key, that acts as an operator;
    its audit line goes to stderr."""
    import io
    import json
    from contextlib import redirect_stderr, redirect_stdout

    from shared.tenancy.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["create-operator", "--owner", "ops"]) == 0
    secret = out.getvalue().strip()
    assert json.loads(err.getvalue())["action"] == "key.create"
    principal = container.keys.resolve(secret)
    assert (principal.role, principal.owner_id) == ("operator", "ops")
    with container.pool.connection() as conn:
        rows = conn.all("SELECT action, actor_key_id FROM audit_log WHERE tenant_id = 'ops'")
    assert rows == [{"action": "key.create", "actor_key_id": None}]
    audit.clear_actor()


# -- ids in bodies, and secrets never echoed ---------------------------------------------------


def test_handoffs_naming_another_tenants_agent_are_refused_as_missing(
    container: Container,
) -> None:
    """A create or update whose handoffs name A's agent answers as for no such agent (404)."""
    with container.pool.transaction() as conn:
        conn.run(
            "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
            " VALUES ('ag_of_a', :o, 'a', 'm', CAST('{}' AS jsonb), now(), now())",
            o=A,
        )
        conn.run(
            "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
            " VALUES ('ag_of_b', :o, 'b', 'm', CAST('{}' AS jsonb), now(), now())",
            o=B,
        )
    b_admin = make_key(container, "admin", B, **NO_LIMIT)
    app = client("admin")
    answers = {}
    for target in ("ag_of_a", "ag_missing"):
        body = {"model": "m", "name": "x", "handoffs": [target]}
        made = app.post("/v1/agents", json=body, headers=bearer(b_admin))
        changed = app.patch(
            "/v1/agents/ag_of_b", json={"handoffs": [target]}, headers=bearer(b_admin)
        )
        answers[target] = (made.status_code, changed.status_code, error_code(made.get_json()))
    assert answers["ag_of_a"] == answers["ag_missing"] == (404, 404, "not_found")
    bad = app.post(
        "/v1/agents",
        json={"model": "m", "name": "x", "handoffs": "ag_of_b"},
        headers=bearer(b_admin),
    )
    assert bad.status_code == 422


def test_a_key_sent_as_an_id_never_comes_back(container: Container) -> None:
    """A secret put in a path id or a query value is not echoed in the error body."""
    admin = make_key(container, "admin", B, **NO_LIMIT)
    secret = admin.secret
    answers = [
        client("admin").patch(f"{KEYS}/{secret}", json={"name": "x"}, headers=bearer(admin)),
        client("admin").post(f"{KEYS}/{secret}/revoke", headers=bearer(admin)),
        client("history").get(f"/v1/conversations/{secret}", headers=bearer(admin)),
        client("history").get(f"/gateway/v1/nothing/{secret}", headers=bearer(admin)),
        client("admin").get(KEYS, query_string={"owner_id": secret}, headers=bearer(admin)),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    for answer in answers:
        assert secret not in answer.get_data(as_text=True)
        assert secret[4:20] not in answer.get_data(as_text=True)


def test_the_local_routers_request_lines_hide_a_key_in_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`make run`'s request line for `?key=mgw_...` shows the path, never the key."""
    import threading
    import urllib.request

    from werkzeug.serving import make_server

    from devstack.router import RedactingRequestHandler

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    secret = "mgw_" + "A" * 43
    server = make_server("127.0.0.1", 0, app, request_handler=RedactingRequestHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    with caplog.at_level("INFO", logger="werkzeug"):
        url = f"http://127.0.0.1:{server.server_port}/v1/conversations?key={secret}"
        urllib.request.urlopen(url, timeout=5).read()  # noqa: S310 (a local test server)
        thread.join(5)
    server.server_close()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/v1/conversations?key=mgw_" in line for line in lines)
    assert not any(secret in line for line in lines)


def test_existing_owners_become_tenants_when_0003_migrates(postgres: Any, tmp_path: Any) -> None:
    """Data written before migration 0003: each owner_id it names becomes a tenant, and
    the existing keys keep working (as admin, user, read_only)."""
    import shutil

    from shared.config import Settings
    from shared.db import Pool, connector_for
    from shared.db.schema import MIGRATIONS_DIR, migrate
    from shared.tenancy.keys import KeyCache, hash_key

    url = postgres.create_database("migrate_tenancy")
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0003":
            shutil.copy(path, before / path.name)
    pool = Pool(connector_for(Settings(database_url=url)), size=2, timeout_s=5)
    try:
        migrate(pool, before)
        with pool.transaction() as conn:
            conn.run(
                "INSERT INTO api_keys (id, owner_id, name, role, prefix, secret_hash)"
                " VALUES ('key_old', 'team-old', 'old', 'admin', 'mgw_x', :h)",
                h=hash_key("mgw_" + "o" * 43),
            )
            conn.run(
                "INSERT INTO conversations (id, owner_id, model, created_at, updated_at)"
                " VALUES ('conv_old', 'team-conv', 'm', now(), now())"
            )
            conn.run(
                "INSERT INTO usage_events (owner_id, operation, status)"
                " VALUES ('team-usage', 'conversations.start', 200)"
            )
        migrate(pool)
        with pool.connection() as conn:
            tenants = conn.all("SELECT id, name, disabled FROM tenants ORDER BY id")
        assert tenants == [
            {"id": owner, "name": owner, "disabled": False}
            for owner in ("team-conv", "team-old", "team-usage")
        ]
        principal = KeyCache(lambda: pool, ttl_s=5).resolve("mgw_" + "o" * 43)
        assert (principal.owner_id, principal.role) == ("team-old", "admin")
    finally:
        pool.close()


def test_an_admin_neither_sees_nor_changes_an_operator_key_of_its_tenant(
    container: Container,
) -> None:
    """An operator key in the admin's tenant is not listed to it and is 404 to rotate."""
    op = make_key(container, "operator", B, **NO_LIMIT)
    admin = make_key(container, "admin", B, **NO_LIMIT)
    listed = client("admin").get(KEYS, headers=bearer(admin)).get_json()["data"]
    assert op.principal.key_id not in {k["id"] for k in listed}
    for action in ("rotate", "revoke"):
        answer = _post(admin, f"{KEYS}/{op.principal.key_id}/{action}")
        assert answer.status_code == 404

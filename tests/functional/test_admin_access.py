"""Who may call the admin function: every role against every admin action, and archiving."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from devstack.standin import StandIn
from shared.container import Container
from shared.http import routes
from shared.tenancy.auth import PUBLIC_OPERATIONS, may
from shared.tenancy.keys import ROLES
from tests.support import bearer, client, error_code, make_key

MODEL = "mistral-small-latest"
OWNER = "tenant-a"
OTHER = "tenant-b"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


@dataclasses.dataclass(frozen=True)
class World:
    """One of everything the admin routes act on, all owned by OWNER."""

    agent_id: str
    key_id: str
    conversation_id: str = "conv_seeded"


def seed(gateway: Container) -> World:
    admin = make_key(gateway, "admin", OWNER, **NO_LIMIT)
    app = client("admin")
    agent = app.post("/v1/agents", json={"model": MODEL, "name": "seeded"}, headers=bearer(admin))
    agent_id = agent.get_json()["id"]
    alias = app.put(f"/v1/agents/{agent_id}/aliases?alias=stable&version=0", headers=bearer(admin))
    assert alias.status_code == 200
    with gateway.pool.connection() as conn:
        conn.run(
            "INSERT INTO conversations (id, owner_id, model, created_at, updated_at)"
            " VALUES ('conv_seeded', :owner, :model, now(), now())",
            owner=OWNER,
            model=MODEL,
        )
    spare = make_key(gateway, "user", OWNER)
    return World(agent_id=agent_id, key_id=spare.principal.key_id)


def snapshot(gateway: Container) -> dict[str, Any]:
    """Everything an admin action could change, to prove a refused one changed nothing."""
    with gateway.pool.connection() as conn:
        return {
            "agents": conn.all("SELECT id, name, status, version FROM agents ORDER BY id"),
            "conversations": conn.all("SELECT id, status FROM conversations ORDER BY id"),
            "keys": conn.all(
                "SELECT id, name, secret_hash, revoked_at, rate_limit_requests FROM api_keys"
                " ORDER BY id"
            ),
        }


# method, path, JSON body, the status an allowed caller gets
ACTIONS: dict[str, tuple[str, str, dict[str, Any] | None, int]] = {
    "conversations.delete": ("DELETE", "/v1/conversations/{conversation_id}", None, 204),
    "gateway.conversations.archive": (
        "POST",
        "/gateway/v1/conversations/{conversation_id}/archive",
        None,
        200,
    ),
    "gateway.conversations.unarchive": (
        "POST",
        "/gateway/v1/conversations/{conversation_id}/unarchive",
        None,
        200,
    ),
    "agents.create": ("POST", "/v1/agents", {"model": MODEL, "name": "another"}, 200),
    "agents.list": ("GET", "/v1/agents", None, 200),
    "agents.list_pages": ("GET", "/v1/agents/pages", None, 200),
    "agents.get": ("GET", "/v1/agents/{agent_id}", None, 200),
    "agents.update": ("PATCH", "/v1/agents/{agent_id}", {"instructions": "new"}, 200),
    "agents.delete": ("DELETE", "/v1/agents/{agent_id}", None, 204),
    "agents.update_version": ("PATCH", "/v1/agents/{agent_id}/version?version=0", None, 200),
    "agents.list_versions": ("GET", "/v1/agents/{agent_id}/versions", None, 200),
    "agents.get_version": ("GET", "/v1/agents/{agent_id}/versions/0", None, 200),
    "agents.create_alias": ("PUT", "/v1/agents/{agent_id}/aliases?alias=beta&version=0", None, 200),
    "agents.list_aliases": ("GET", "/v1/agents/{agent_id}/aliases", None, 200),
    "agents.delete_alias": ("DELETE", "/v1/agents/{agent_id}/aliases?alias=stable", None, 204),
    "gateway.keys.create": ("POST", "/gateway/v1/keys", {"name": "new", "role": "user"}, 200),
    "gateway.keys.list": ("GET", "/gateway/v1/keys", None, 200),
    "gateway.keys.update": (
        "PATCH",
        "/gateway/v1/keys/{key_id}",
        {"rate_limit_requests": 7},
        200,
    ),
    "gateway.keys.revoke": ("POST", "/gateway/v1/keys/{key_id}/revoke", None, 200),
    "gateway.keys.rotate": ("POST", "/gateway/v1/keys/{key_id}/rotate", None, 200),
    "gateway.usage": ("GET", "/gateway/v1/usage", None, 200),
    "gateway.whoami": ("GET", "/gateway/v1/whoami", None, 200),
    "gateway.tenants.create": ("POST", "/gateway/v1/tenants", {"id": "t2", "name": "T2"}, 200),
    "gateway.tenants.list": ("GET", "/gateway/v1/tenants", None, 200),
    "gateway.tenants.get": ("GET", "/gateway/v1/tenants/" + OWNER, None, 200),
    "gateway.tenants.update": ("PATCH", "/gateway/v1/tenants/" + OWNER, {"name": "A"}, 200),
    "gateway.audit.list": ("GET", "/gateway/v1/audit", None, 200),
    "models.list": ("GET", "/v1/models", None, 200),
    "models.retrieve": ("GET", "/v1/models/" + MODEL, None, 200),
}
# Every tenant's: the operator's (tests/functional/test_tenancy_matrix.py covers it).
OPERATOR_ONLY = {"gateway.tenants.create", "gateway.tenants.list", "gateway.tenants.update"}


# Tenant-owned resources (files, libraries, batch jobs): every role, in its own tenant and
# another's, in tests/functional/test_tenancy_matrix.py, whose world holds one of each.
RESOURCES = {
    r.operation
    for r in routes.routes_for("admin")
    if r.template.startswith(("/v1/files", "/v1/libraries", "/v1/batch/jobs"))
}


def test_every_admin_route_is_in_the_matrix() -> None:
    """The matrix below covers each keyed admin operation (health, console and the
    tenant-owned resources aside) exactly."""
    operations = {r.operation for r in routes.routes_for("admin")} - PUBLIC_OPERATIONS
    assert operations - RESOURCES == set(ACTIONS)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "operator"])
@pytest.mark.parametrize("operation", sorted(ACTIONS))
def test_permission_matrix(gateway: Container, standin: StandIn, role: str, operation: str) -> None:
    """An allowed role gets the success status; others get 403 with nothing sent or changed."""
    world = seed(gateway)
    key = make_key(gateway, role, OWNER, **NO_LIMIT)
    method, template, body, success = ACTIONS[operation]
    path = template.format(**dataclasses.asdict(world))
    calls, before = standin.calls(), snapshot(gateway)
    answer = client("admin").open(path, method=method, json=body, headers=bearer(key))
    if may(role, operation):
        assert answer.status_code == success, answer.get_data(as_text=True)
    else:
        assert answer.status_code == 403
        assert error_code(answer.get_json()) == "forbidden"
        assert standin.calls() == calls
        assert snapshot(gateway) == before


def test_roles_match_the_issue() -> None:
    """admin may do everything in its tenant; user also archives and reads agents; read_only
    reads usage; every role reads the models list."""
    assert {op for op in ACTIONS if may("read_only", op)} == {
        "gateway.usage",
        "gateway.whoami",
        "models.list",
        "models.retrieve",
    }
    assert {op for op in ACTIONS if may("user", op)} == {
        "agents.get",
        "agents.get_version",
        "agents.list",
        "agents.list_aliases",
        "agents.list_pages",
        "agents.list_versions",
        "gateway.conversations.archive",
        "gateway.conversations.unarchive",
        "gateway.usage",
        "gateway.whoami",
        "models.list",
        "models.retrieve",
    }
    assert {op for op in ACTIONS if not may("admin", op)} == OPERATOR_ONLY


# -- archive and unarchive -----------------------------------------------------------------------


def test_archive_changes_the_status_only_and_unarchive_restores_it(gateway: Container) -> None:
    """Archiving keeps the entries; unarchiving makes the conversation active again."""
    seed(gateway)
    with gateway.pool.connection() as conn:
        conn.run(
            "INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type, body,"
            " created_at) VALUES ('conv_seeded', 0, 'msg_0', :owner, 'message.input', '{}',"
            " now())",
            owner=OWNER,
        )
    user = make_key(gateway, "user", OWNER)
    app = client("admin")
    archived = app.post("/gateway/v1/conversations/conv_seeded/archive", headers=bearer(user))
    assert archived.get_json() == {
        "object": "gateway.conversation",
        "id": "conv_seeded",
        "status": "archived",
    }
    with gateway.pool.connection() as conn:
        assert conn.run("SELECT count(*) FROM conversation_entries") == [[1]]
    restored = app.post("/gateway/v1/conversations/conv_seeded/unarchive", headers=bearer(user))
    assert restored.get_json()["status"] == "active"


def test_archive_of_another_tenants_or_a_deleted_conversation_is_404(gateway: Container) -> None:
    """Another tenant's conversation, a deleted one and an unknown id all answer 404."""
    seed(gateway)
    with gateway.pool.connection() as conn:
        conn.run(
            "INSERT INTO conversations (id, owner_id, model, status, created_at, updated_at)"
            " VALUES ('conv_gone', :owner, :model, 'deleted', now(), now())",
            owner=OWNER,
            model=MODEL,
        )
    stranger = make_key(gateway, "admin", OTHER)
    mine = make_key(gateway, "user", OWNER)
    app = client("admin")
    attempts = [
        app.post("/gateway/v1/conversations/conv_seeded/archive", headers=bearer(stranger)),
        app.post("/gateway/v1/conversations/conv_seeded/unarchive", headers=bearer(stranger)),
        app.post("/gateway/v1/conversations/conv_gone/unarchive", headers=bearer(mine)),
        app.post("/gateway/v1/conversations/conv_none/archive", headers=bearer(mine)),
    ]
    assert [a.status_code for a in attempts] == [404] * 4
    with gateway.pool.connection() as conn:
        statuses = dict(conn.run("SELECT id, status FROM conversations"))
    assert statuses == {"conv_seeded": "active", "conv_gone": "deleted"}

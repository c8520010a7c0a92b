"""Tenant isolation, route by route: another tenant's objects answer 404 and never list.

One table walks `shared.http.routes.ROUTES`: every route with a path parameter is asked by
tenant B (an admin, so no role stands in the way) for tenant A's object, and must
answer 404 in the gateway's shape, with nothing sent to Mistral and nothing of A's
changed. A route added to the table without a row here fails
`test_every_parameterised_route_is_covered`.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.http import routes
from shared.tenancy.auth import PUBLIC_OPERATIONS, may
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

TENANT_A, TENANT_B = "tenant-isolation-a", "tenant-isolation-b"
MODEL = "mistral-small-latest"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
A_TOKENS = 777_777  # A's usage, recognisable in any body it should not be in

# An upload's body: sent as multipart/form-data.
UPLOAD = {"__multipart__": "taken.txt"}

# operation -> (query string, JSON body) for a request that would succeed for the owner.
BY_ID: dict[str, tuple[str, dict[str, Any] | None]] = {
    "conversations.append": ("", {"inputs": "hi"}),
    "conversations.restart": ("", {"inputs": "hi", "from_entry_id": "msg_a"}),
    "conversations.get": ("", None),
    "conversations.history": ("", None),
    "conversations.messages": ("", None),
    "gateway.conversations.entries": ("", None),
    "gateway.batches.get": ("", None),
    "gateway.batches.items": ("", None),
    "conversations.delete": ("", None),
    "gateway.conversations.archive": ("", None),
    "gateway.conversations.unarchive": ("", None),
    "agents.get": ("", None),
    "agents.update": ("", {"description": "taken over"}),
    "agents.delete": ("", None),
    "agents.update_version": ("?version=0", None),
    "agents.list_versions": ("", None),
    "agents.get_version": ("", None),
    "agents.create_alias": ("?alias=mine&version=0", None),
    "agents.list_aliases": ("", None),
    "agents.delete_alias": ("?alias=stable", None),
    "gateway.keys.update": ("", {"name": "taken over"}),
    "gateway.keys.revoke": ("", None),
    "gateway.keys.rotate": ("", None),
    "gateway.tenants.get": ("", None),
    # tenant-owned resources: A's file, library, document, batch job
    "files.retrieve": ("", None),
    "files.delete": ("", None),
    "files.download": ("", None),
    "files.get_signed_url": ("", None),
    "libraries.get": ("", None),
    "libraries.update": ("", {"name": "taken over"}),
    "libraries.replace": ("", {"name": "taken over"}),
    "libraries.delete": ("", None),
    "libraries.documents.list": ("", None),
    "libraries.documents.upload": ("", UPLOAD),
    "libraries.documents.get": ("", None),
    "libraries.documents.update": ("", {"name": "taken over"}),
    "libraries.documents.replace": ("", {"name": "taken over"}),
    "libraries.documents.delete": ("", None),
    "libraries.documents.text_content": ("", None),
    "libraries.documents.status": ("", None),
    "libraries.documents.get_signed_url": ("", None),
    "libraries.documents.extracted_text_signed_url": ("", None),
    "libraries.documents.reprocess": ("", None),
    "libraries.accesses.list": ("", None),
    "libraries.accesses.update_or_create": (
        "",
        {"level": "Editor", "share_with_uuid": "u", "share_with_type": "User"},
    ),
    "libraries.accesses.delete": ("", {"share_with_uuid": "u", "share_with_type": "User"}),
    "batch.jobs.get": ("", None),
    "batch.jobs.cancel": ("", None),
    "batch.jobs.delete": ("", None),
}
# A's agent asked for a specific version is relayed to Mistral by the owner: B must not be.
EXTRA = {"agents.get?agent_version": ("agents.get", "?agent_version=0", None)}

# Listings: B's answer must hold nothing of A's.
LISTS = {
    "conversations.list": "/v1/conversations",
    "gateway.conversations.list": "/gateway/v1/conversations?status=archived",
    "gateway.batches.list": "/gateway/v1/batches",
    "agents.list": "/v1/agents",
    "agents.list_pages": "/v1/agents/pages",
    "gateway.keys.list": "/gateway/v1/keys",
    "gateway.usage": "/gateway/v1/usage",
    "gateway.whoami": "/gateway/v1/whoami",
    "gateway.audit.list": "/gateway/v1/audit",
    "files.list": "/v1/files",
    "libraries.list": "/v1/libraries",
    "batch.jobs.list": "/v1/batch/jobs",
}


# Shared read-only (Mistral's models): no tenant owns them, every tenant reads the same list
# (tests/functional/test_tenancy_matrix.py, test_models_and_not_exposed.py).
SHARED = frozenset({"models.list", "models.retrieve"})


def _parameterised() -> set[str]:
    # An operator-only route (changing a tenant) crosses tenants by design: the matrix's.
    return {
        r.operation
        for r in routes.ROUTES
        if r.params and may("admin", r.operation) and r.operation not in SHARED
    }


def _listing() -> set[str]:
    return {
        r.operation
        for r in routes.ROUTES
        if r.method == "GET"
        and not r.params
        and r.operation not in PUBLIC_OPERATIONS
        # Every tenant's list is the operator's alone (test_tenancy_matrix.py).
        and may("admin", r.operation)
        and r.operation not in SHARED
    }


def test_every_parameterised_route_is_covered() -> None:
    """The table holds exactly the routes that take an object id: a new one must be added."""
    assert set(BY_ID) == _parameterised()


def test_every_listing_route_is_covered() -> None:
    """Every keyed GET route without an id is a listing checked for A's objects."""
    assert set(LISTS) == _listing()


@dataclasses.dataclass(frozen=True)
class Tenants:
    a_admin: NewKey
    a_key_id: str
    b_admin: NewKey

    @property
    def ids(self) -> dict[str, str]:
        return {
            "conversation_id": "conv_a",
            "agent_id": "ag_a",
            "batch_id": "batch_a",
            "key_id": self.a_key_id,
            "version": "0",
            "tenant_id": TENANT_A,
            "file_id": "file_a",
            "library_id": "lib_a",
            "document_id": "doc_a",
            "job_id": "job_a",
        }


def _seed_a(gateway: Container) -> None:
    """Tenant A's conversation (archived one too), agent, batch and usage, in the database."""
    agent = {"id": "ag_a", "object": "agent", "name": "a's agent", "model": MODEL, "version": 0}
    with gateway.pool.transaction() as conn:
        conn.run(
            "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
            " VALUES ('ag_a', :owner, 'a''s agent', :model, CAST(:body AS jsonb), now(), now())",
            owner=TENANT_A,
            model=MODEL,
            body=json.dumps(agent),
        )
        for conversation, status in (("conv_a", "active"), ("conv_a_archived", "archived")):
            conn.run(
                "INSERT INTO conversations"
                " (id, owner_id, agent_id, status, created_at, updated_at)"
                " VALUES (:id, :owner, 'ag_a', :status, now(), now())",
                id=conversation,
                owner=TENANT_A,
                status=status,
            )
        conn.run(
            "INSERT INTO conversation_entries"
            " (conversation_id, seq, id, owner_id, type, role, content, body, created_at)"
            " VALUES ('conv_a', 0, 'msg_a', :owner, 'message.input', 'user', 'secret plans',"
            " CAST('{}' AS jsonb), now())",
            owner=TENANT_A,
        )
        conn.run(
            "INSERT INTO batches (id, owner_id, status, item_count)"
            " VALUES ('batch_a', :owner, 'succeeded', 1)",
            owner=TENANT_A,
        )
        conn.run(
            "INSERT INTO batch_items (batch_id, idx, owner_id, custom_id, status, request)"
            " VALUES ('batch_a', 0, :owner, 'a-item', 'succeeded', CAST('{}' AS jsonb))",
            owner=TENANT_A,
        )
        conn.run(
            "INSERT INTO audit_log (tenant_id, action, target_id) VALUES (:o, 'agent.create',"
            " 'ag_a')",
            o=TENANT_A,
        )
        for kind, ident, parent in (
            ("file", "file_a", None),
            ("library", "lib_a", None),
            ("document", "doc_a", "lib_a"),
            ("batch_job", "job_a", None),
        ):
            conn.run(
                "INSERT INTO owned_resources (kind, id, owner_id, parent_id, body)"
                " VALUES (:kind, :id, :owner, :parent, CAST(:body AS jsonb))",
                kind=kind,
                id=ident,
                owner=TENANT_A,
                parent=parent,
                body=json.dumps({"id": ident, "name": "a's", "filename": "a's"}),
            )
        conn.run(
            "INSERT INTO usage_events (owner_id, operation, model, status, prompt_tokens)"
            " VALUES (:owner, 'conversations.start', :model, 200, :tokens)",
            owner=TENANT_A,
            model=MODEL,
            tokens=A_TOKENS,
        )


@pytest.fixture
def tenants(container: Container, standin: StandIn, base_settings: Settings) -> Iterator[Tenants]:
    standin.reset()
    settings = dataclasses.replace(base_settings, mistral_server_url=standin.url)
    gateway = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(gateway)
    _seed_a(gateway)
    a_admin = make_key(gateway, "admin", TENANT_A, **NO_LIMIT)
    a_user = make_key(gateway, "user", TENANT_A)
    b_admin = make_key(gateway, "admin", TENANT_B, **NO_LIMIT)
    yield Tenants(a_admin=a_admin, a_key_id=a_user.principal.key_id, b_admin=b_admin)
    set_container(previous)


def _snapshot(gateway: Container) -> dict[str, Any]:
    """Everything of A's that a request could change."""
    with gateway.pool.connection() as conn:
        return {
            table: conn.all(f"SELECT * FROM {table} WHERE owner_id = :o ORDER BY 1, 2", o=TENANT_A)
            for table in (
                "agents",
                "conversations",
                "conversation_entries",
                "api_keys",
                "batches",
                "batch_items",
                "owned_resources",
            )
        }


def _route(operation: str) -> routes.Route:
    return next(r for r in routes.ROUTES if r.operation == operation)


CASES = {**{op: (op, *BY_ID[op]) for op in BY_ID}, **EXTRA}


@pytest.mark.parametrize("case", sorted(CASES))
def test_another_tenants_object_is_404(
    tenants: Tenants, standin: StandIn, container: Container, case: str
) -> None:
    """Tenant B gets 404 for tenant A's object; nothing reaches Mistral, nothing of A's changes."""
    operation, query, body = CASES[case]
    route = _route(operation)
    path = route.template.format(**tenants.ids) + query
    before, calls = _snapshot(container), standin.calls()
    if body == UPLOAD:
        answer = client(route.function).open(
            path,
            method=route.method,
            data={"file": (io.BytesIO(b"taken"), "taken.txt")},
            content_type="multipart/form-data",
            headers=bearer(tenants.b_admin),
        )
    else:
        answer = client(route.function).open(
            path, method=route.method, json=body, headers=bearer(tenants.b_admin)
        )
    assert answer.status_code == 404, answer.get_data(as_text=True)
    error = answer.get_json()
    assert error["object"] == "error"
    assert error_code(error) == "not_found"
    assert error["request_id"] == answer.headers["X-Request-Id"]
    text = answer.get_data(as_text=True).lower()
    assert not any(leak in text for leak in ("mgw_", "traceback", "select ", TENANT_A))
    assert standin.calls() == calls
    assert _snapshot(container) == before


@pytest.mark.parametrize("case", ["conversations.get", "gateway.batches.items", "agents.get"])
def test_the_owner_gets_the_same_objects(tenants: Tenants, case: str) -> None:
    """Control: A's own admin reaches what B was refused, so the 404s are about tenancy."""
    operation, query, body = CASES[case]
    route = _route(operation)
    path = route.template.format(**tenants.ids) + query
    answer = client(route.function).open(
        path, method=route.method, json=body, headers=bearer(tenants.a_admin)
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


@pytest.mark.parametrize("operation", sorted(LISTS))
def test_listings_never_show_another_tenants_objects(tenants: Tenants, operation: str) -> None:
    """B's listings hold none of A's ids, owner, content or usage; A's do (the control)."""
    route = _route(operation)
    marks = ("conv_a", "ag_a", "batch_a", tenants.a_key_id, TENANT_A, str(A_TOKENS))
    marks += ("file_a", "lib_a", "job_a")
    seen_by_a = client(route.function).get(LISTS[operation], headers=bearer(tenants.a_admin))
    assert seen_by_a.status_code == 200, seen_by_a.get_data(as_text=True)
    assert any(m in seen_by_a.get_data(as_text=True) for m in marks)
    answer = client(route.function).get(LISTS[operation], headers=bearer(tenants.b_admin))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    text = answer.get_data(as_text=True)
    for mark in marks:
        assert mark not in text, f"{mark} in {operation}: {text}"

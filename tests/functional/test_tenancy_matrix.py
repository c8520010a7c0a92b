"""Every route x every role x the caller's own tenant or another: the status, as data.

The world (a conversation with its entries, an agent with an alias, a key, a batch)
belongs to tenant A. The caller's key is either in A ("same") or in B ("other").
Each cell of `EXPECTED` is the status that request must answer; a route added to
the route table without its row fails `test_every_route_has_a_row`.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from devstack.standin import StandIn
from shared.container import Container
from shared.http import routes
from shared.tenancy.keys import ROLES, NewKey
from tests.support import bearer, client, error_code, make_key

MODEL = "mistral-small-latest"
A = "tenant-a"
B = "tenant-b"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
_CHAT = [{"role": "user", "content": "hi"}]

# operation -> (method, path template, JSON body). Templates name the world's ids.
REQUESTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "conversations.start": ("POST", "/v1/conversations", {"model": MODEL, "inputs": "hi"}),
    "conversations.append": ("POST", "/v1/conversations/{conversation}", {"inputs": "more"}),
    "conversations.restart": (
        "POST",
        "/v1/conversations/{conversation}/restart",
        {"inputs": "again", "from_entry_id": "{entry}"},
    ),
    "conversations.list": ("GET", "/v1/conversations", None),
    "conversations.get": ("GET", "/v1/conversations/{conversation}", None),
    "conversations.history": ("GET", "/v1/conversations/{conversation}/history", None),
    "conversations.messages": ("GET", "/v1/conversations/{conversation}/messages", None),
    "gateway.conversations.list": ("GET", "/gateway/v1/conversations", None),
    "gateway.conversations.entries": (
        "GET",
        "/gateway/v1/conversations/{conversation}/entries",
        None,
    ),
    "gateway.batches.list": ("GET", "/gateway/v1/batches", None),
    "gateway.batches.get": ("GET", "/gateway/v1/batches/{batch}", None),
    "gateway.batches.items": ("GET", "/gateway/v1/batches/{batch}/items", None),
    "gateway.openapi": ("GET", "/gateway/v1/openapi.json", None),
    "conversations.delete": ("DELETE", "/v1/conversations/{conversation}", None),
    "agents.create": ("POST", "/v1/agents", {"model": MODEL, "name": "another"}),
    "agents.list": ("GET", "/v1/agents", None),
    "agents.list_pages": ("GET", "/v1/agents/pages", None),
    "agents.get": ("GET", "/v1/agents/{agent}", None),
    "agents.update": ("PATCH", "/v1/agents/{agent}", {"instructions": "new"}),
    "agents.delete": ("DELETE", "/v1/agents/{agent}", None),
    "agents.update_version": ("PATCH", "/v1/agents/{agent}/version?version=0", None),
    "agents.list_versions": ("GET", "/v1/agents/{agent}/versions", None),
    "agents.get_version": ("GET", "/v1/agents/{agent}/versions/0", None),
    "agents.create_alias": ("PUT", "/v1/agents/{agent}/aliases?alias=beta&version=0", None),
    "agents.list_aliases": ("GET", "/v1/agents/{agent}/aliases", None),
    "agents.delete_alias": ("DELETE", "/v1/agents/{agent}/aliases?alias=stable", None),
    "gateway.conversations.archive": (
        "POST",
        "/gateway/v1/conversations/{conversation}/archive",
        None,
    ),
    "gateway.conversations.unarchive": (
        "POST",
        "/gateway/v1/conversations/{conversation}/unarchive",
        None,
    ),
    "gateway.keys.create": (
        "POST",
        "/gateway/v1/keys",
        {"name": "new", "role": "user", "owner_id": "{tenant}"},
    ),
    "gateway.keys.list": ("GET", "/gateway/v1/keys?owner_id={tenant}", None),
    "gateway.keys.update": ("PATCH", "/gateway/v1/keys/{key}", {"rate_limit_requests": 7}),
    "gateway.keys.revoke": ("POST", "/gateway/v1/keys/{key}/revoke", None),
    "gateway.keys.rotate": ("POST", "/gateway/v1/keys/{key}/rotate", None),
    "gateway.usage": ("GET", "/gateway/v1/usage?owner_id={tenant}", None),
    "gateway.tenants.create": ("POST", "/gateway/v1/tenants", {"id": "new-team", "name": "New"}),
    "gateway.tenants.list": ("GET", "/gateway/v1/tenants", None),
    "gateway.tenants.get": ("GET", "/gateway/v1/tenants/{tenant}", None),
    "gateway.tenants.update": ("PATCH", "/gateway/v1/tenants/{tenant}", {"name": "Renamed"}),
    "gateway.audit.list": ("GET", "/gateway/v1/audit?tenant_id={tenant}", None),
    "gateway.whoami": ("GET", "/gateway/v1/whoami", None),
    "gateway.console": ("GET", "/gateway/v1/console", None),
    "gateway.console.asset": ("GET", "/gateway/v1/console/app.js", None),
    # Not public: the load balancer never routes it; Cloud Run IAM guards it, not a key.
    # A body that is no Pub/Sub push is acknowledged (400 would be redelivered for ever).
    "gateway.batches.deliver": ("POST", "/gateway/v1/batches/events", {}),
    "gateway.health": ("GET", "/gateway/v1/health/{function}", None),
    # metered pass-through
    "chat.complete": ("POST", "/v1/chat/completions", {"model": MODEL, "messages": _CHAT}),
    "fim.complete": ("POST", "/v1/fim/completions", {"model": "codestral", "prompt": "x ="}),
    "embeddings.create": ("POST", "/v1/embeddings", {"model": "mistral-embed", "input": "x"}),
    "agents.complete": (
        "POST",
        "/v1/agents/completions",
        {"agent_id": "{agent}", "messages": _CHAT},
    ),
    "classifiers.classify": ("POST", "/v1/classifications", {"model": "m", "input": "x"}),
    "classifiers.classify_chat": (
        "POST",
        "/v1/chat/classifications",
        {"model": "m", "input": [{"messages": _CHAT}]},
    ),
    "classifiers.moderate": ("POST", "/v1/moderations", {"model": "m", "input": "x"}),
    "classifiers.moderate_chat": ("POST", "/v1/chat/moderations", {"model": "m", "input": _CHAT}),
    "ocr.process": (
        "POST",
        "/v1/ocr",
        {"model": "mistral-ocr-latest", "document": {"type": "document_url", "document_url": "u"}},
    ),
    # multipart: its form is in MULTIPART
    "audio.transcriptions.complete": ("POST", "/v1/audio/transcriptions", None),
    "audio.speech.complete": ("POST", "/v1/audio/speech", {"input": "say this"}),
}
# operation -> multipart form fields (a file is (bytes, name)).
MULTIPART: dict[str, dict[str, Any]] = {
    "audio.transcriptions.complete": {"model": "voxtral-mini-latest", "file": (b"abc", "a.mp3")},
}

# operation -> statuses for (operator, admin, user, read_only), each "same/other".
# fmt: off
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    #                                   operator   admin      user       read_only
    "conversations.start":             ("403/403", "200/200", "200/200", "403/403"),
    "conversations.append":            ("403/403", "200/404", "200/404", "403/403"),
    "conversations.restart":           ("403/403", "200/404", "200/404", "403/403"),
    "conversations.list":              ("403/403", "200/200", "200/200", "200/200"),
    "conversations.get":               ("403/403", "200/404", "200/404", "200/404"),
    "conversations.history":           ("403/403", "200/404", "200/404", "200/404"),
    "conversations.messages":          ("403/403", "200/404", "200/404", "200/404"),
    "gateway.conversations.list":      ("403/403", "200/200", "200/200", "200/200"),
    "gateway.conversations.entries":   ("403/403", "200/404", "200/404", "200/404"),
    "gateway.batches.list":            ("403/403", "200/200", "200/200", "200/200"),
    "gateway.batches.get":             ("403/403", "200/404", "200/404", "200/404"),
    "gateway.batches.items":           ("403/403", "200/404", "200/404", "200/404"),
    "gateway.openapi":                 ("200/200", "200/200", "200/200", "200/200"),
    "conversations.delete":            ("403/403", "204/404", "403/403", "403/403"),
    "agents.create":                   ("403/403", "200/200", "403/403", "403/403"),
    "agents.list":                     ("403/403", "200/200", "200/200", "403/403"),
    "agents.list_pages":               ("403/403", "200/200", "200/200", "403/403"),
    "agents.get":                      ("403/403", "200/404", "200/404", "403/403"),
    "agents.update":                   ("403/403", "200/404", "403/403", "403/403"),
    "agents.delete":                   ("403/403", "204/404", "403/403", "403/403"),
    "agents.update_version":           ("403/403", "200/404", "403/403", "403/403"),
    "agents.list_versions":            ("403/403", "200/404", "200/404", "403/403"),
    "agents.get_version":              ("403/403", "200/404", "200/404", "403/403"),
    "agents.create_alias":             ("403/403", "200/404", "403/403", "403/403"),
    "agents.list_aliases":             ("403/403", "200/404", "200/404", "403/403"),
    "agents.delete_alias":             ("403/403", "204/404", "403/403", "403/403"),
    "gateway.conversations.archive":   ("403/403", "200/404", "200/404", "403/403"),
    "gateway.conversations.unarchive": ("403/403", "200/404", "200/404", "403/403"),
    "gateway.keys.create":             ("200/200", "200/404", "403/403", "403/403"),
    "gateway.keys.list":               ("200/200", "200/404", "403/403", "403/403"),
    "gateway.keys.update":             ("200/200", "200/404", "403/403", "403/403"),
    "gateway.keys.revoke":             ("200/200", "200/404", "403/403", "403/403"),
    "gateway.keys.rotate":             ("200/200", "200/404", "403/403", "403/403"),
    "gateway.usage":                   ("200/200", "200/404", "200/404", "200/404"),
    "gateway.tenants.create":          ("200/200", "403/403", "403/403", "403/403"),
    "gateway.tenants.list":            ("200/200", "403/403", "403/403", "403/403"),
    "gateway.tenants.get":             ("200/200", "200/404", "403/403", "403/403"),
    "gateway.tenants.update":          ("200/200", "403/403", "403/403", "403/403"),
    "gateway.audit.list":              ("200/200", "200/404", "403/403", "403/403"),
    "gateway.whoami":                  ("200/200", "200/200", "200/200", "200/200"),
    "gateway.console":                 ("200/200", "200/200", "200/200", "200/200"),
    "gateway.console.asset":           ("200/200", "200/200", "200/200", "200/200"),
    "gateway.batches.deliver":         ("200/200", "200/200", "200/200", "200/200"),
    "gateway.health":                  ("200/200", "200/200", "200/200", "200/200"),
    "chat.complete":                   ("403/403", "200/200", "200/200", "403/403"),
    "fim.complete":                    ("403/403", "200/200", "200/200", "403/403"),
    "embeddings.create":               ("403/403", "200/200", "200/200", "403/403"),
    "agents.complete":                 ("403/403", "200/404", "200/404", "403/403"),
    "classifiers.classify":            ("403/403", "200/200", "200/200", "403/403"),
    "classifiers.classify_chat":       ("403/403", "200/200", "200/200", "403/403"),
    "classifiers.moderate":            ("403/403", "200/200", "200/200", "403/403"),
    "classifiers.moderate_chat":       ("403/403", "200/200", "200/200", "403/403"),
    "ocr.process":                     ("403/403", "200/200", "200/200", "403/403"),
    "audio.transcriptions.complete":   ("403/403", "200/200", "200/200", "403/403"),
    "audio.speech.complete":           ("403/403", "200/200", "200/200", "403/403"),
}
# fmt: on


def seed(gateway: Container) -> dict[str, str]:
    """Tenant A's world, made through the gateway where Mistral must know it."""
    admin = make_key(gateway, "admin", A, **NO_LIMIT)
    make_key(gateway, "read_only", B)  # tenant B exists
    agent = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": "seeded"}, headers=bearer(admin)
    )
    agent_id = agent.get_json()["id"]
    alias = client("admin").put(
        f"/v1/agents/{agent_id}/aliases?alias=stable&version=0", headers=bearer(admin)
    )
    assert alias.status_code == 200
    started = client("start").post(
        "/v1/conversations", json={"model": MODEL, "inputs": "seed"}, headers=bearer(admin)
    )
    conversation_id = started.get_json()["conversation_id"]
    with gateway.pool.transaction() as conn:
        entry = conn.one(
            "SELECT id FROM conversation_entries WHERE conversation_id = :c AND type ="
            " 'message.output'",
            c=conversation_id,
        )
        assert entry is not None
        conn.run(
            "INSERT INTO batches (id, owner_id, status) VALUES ('batch_seeded', :o, 'succeeded')",
            o=A,
        )
    spare = make_key(gateway, "user", A)
    return {
        "conversation": conversation_id,
        "entry": entry["id"],
        "agent": agent_id,
        "key": spare.principal.key_id,
        "batch": "batch_seeded",
        "tenant": A,
    }


def _fill(value: Any, world: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


def test_every_route_has_a_row() -> None:
    """Each operation of the route table has a request and a row of expected statuses."""
    operations = {r.operation for r in routes.ROUTES}
    assert operations == set(EXPECTED)
    assert operations == set(REQUESTS)


CELLS = [
    (operation, role, tenant)
    for operation in sorted(EXPECTED)
    for role in ROLES
    for tenant in ("same", "other")
]


@pytest.mark.parametrize(("operation", "role", "tenant"), CELLS)
def test_permission_matrix(
    gateway: Container, standin: StandIn, operation: str, role: str, tenant: str
) -> None:
    """The status of one cell is the one its row says; refusals reach nothing upstream."""
    world = seed(gateway)
    key: NewKey = make_key(gateway, role, A if tenant == "same" else B, **NO_LIMIT)
    method, template, body = REQUESTS[operation]
    expected = int(EXPECTED[operation][ROLES.index(role)].split("/")[0 if tenant == "same" else 1])
    found = [r for r in routes.ROUTES if r.operation == operation]
    calls = standin.calls()
    statuses = []
    for route in found:
        path = _fill(template, {**world, "function": route.function})
        if operation in MULTIPART:
            form = {
                k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v
                for k, v in MULTIPART[operation].items()
            }
            answer = client(route.function).open(
                path,
                method=method,
                data=form,
                content_type="multipart/form-data",
                headers=bearer(key),
            )
        else:
            answer = client(route.function).open(
                path, method=method, json=_fill(body, world), headers=bearer(key)
            )
        statuses.append(answer.status_code)
        if expected in (403, 404):
            assert error_code(answer.get_json()) in ("forbidden", "not_found"), answer.get_data()
    assert statuses == [expected] * len(found), (operation, role, tenant)
    if expected in (403, 404):
        assert standin.calls() == calls

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

# The body of an upload: sent as multipart/form-data.
UPLOAD = {"__multipart__": "upload.jsonl"}
_DOC = "/v1/libraries/{library}/documents/{document}"

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
    # Shared read-only: the same for every tenant ("other" reads what "same" reads).
    "models.list": ("GET", "/v1/models", None),
    "models.retrieve": ("GET", "/v1/models/" + MODEL, None),
    "gateway.console": ("GET", "/gateway/v1/console", None),
    "gateway.console.asset": ("GET", "/gateway/v1/console/app.js", None),
    # Not public: the load balancer never routes it; Cloud Run IAM guards it, not a key.
    # A body that is no Pub/Sub push is acknowledged (400 would be redelivered for ever).
    "gateway.batches.deliver": ("POST", "/gateway/v1/batches/events", {}),
    # Not public either: Cloud Scheduler's OIDC token, checked by Cloud Run IAM.
    "gateway.batch_jobs.sweep": ("POST", "/gateway/v1/batch/jobs/sweep", None),
    "gateway.health": ("GET", "/gateway/v1/health/{function}", None),
    # tenant-owned Mistral resources: A's file, library, document and batch job
    "files.upload": ("POST", "/v1/files", UPLOAD),
    "files.list": ("GET", "/v1/files", None),
    "files.retrieve": ("GET", "/v1/files/{file}", None),
    "files.delete": ("DELETE", "/v1/files/{file}", None),
    "files.download": ("GET", "/v1/files/{file}/content", None),
    "files.get_signed_url": ("GET", "/v1/files/{file}/url", None),
    "libraries.list": ("GET", "/v1/libraries", None),
    "libraries.create": ("POST", "/v1/libraries", {"name": "another"}),
    "libraries.get": ("GET", "/v1/libraries/{library}", None),
    "libraries.update": ("PATCH", "/v1/libraries/{library}", {"name": "renamed"}),
    "libraries.replace": ("PUT", "/v1/libraries/{library}", {"name": "renamed"}),
    "libraries.delete": ("DELETE", "/v1/libraries/{library}", None),
    "libraries.documents.list": ("GET", "/v1/libraries/{library}/documents", None),
    "libraries.documents.upload": ("POST", "/v1/libraries/{library}/documents", UPLOAD),
    "libraries.documents.get": ("GET", _DOC, None),
    "libraries.documents.update": ("PATCH", _DOC, {"name": "renamed"}),
    "libraries.documents.replace": ("PUT", _DOC, {"name": "renamed"}),
    "libraries.documents.delete": ("DELETE", _DOC, None),
    "libraries.documents.text_content": ("GET", _DOC + "/text_content", None),
    "libraries.documents.status": ("GET", _DOC + "/status", None),
    "libraries.documents.get_signed_url": ("GET", _DOC + "/signed-url", None),
    "libraries.documents.extracted_text_signed_url": (
        "GET",
        _DOC + "/extracted-text-signed-url",
        None,
    ),
    "libraries.documents.reprocess": ("POST", _DOC + "/reprocess", None),
    "libraries.accesses.list": ("GET", "/v1/libraries/{library}/share", None),
    "libraries.accesses.update_or_create": (
        "PUT",
        "/v1/libraries/{library}/share",
        {"level": "Editor", "share_with_uuid": "u2", "share_with_type": "User"},
    ),
    "libraries.accesses.delete": (
        "DELETE",
        "/v1/libraries/{library}/share",
        {"share_with_uuid": "u1", "share_with_type": "User"},
    ),
    "batch.jobs.list": ("GET", "/v1/batch/jobs", None),
    # Naming A's file: another tenant's reference is refused as a missing file.
    "batch.jobs.create": (
        "POST",
        "/v1/batch/jobs",
        {"input_files": ["{file}"], "endpoint": "/v1/chat/completions", "model": MODEL},
    ),
    "batch.jobs.get": ("GET", "/v1/batch/jobs/{job}", None),
    "batch.jobs.cancel": ("POST", "/v1/batch/jobs/{job}/cancel", None),
    "batch.jobs.delete": ("DELETE", "/v1/batch/jobs/{job}", None),
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
    "models.list":                     ("200/200", "200/200", "200/200", "200/200"),
    "models.retrieve":                 ("200/200", "200/200", "200/200", "200/200"),
    "gateway.console":                 ("200/200", "200/200", "200/200", "200/200"),
    "gateway.console.asset":           ("200/200", "200/200", "200/200", "200/200"),
    "gateway.batches.deliver":         ("200/200", "200/200", "200/200", "200/200"),
    "gateway.batch_jobs.sweep":        ("200/200", "200/200", "200/200", "200/200"),
    "gateway.health":                  ("200/200", "200/200", "200/200", "200/200"),
    **dict.fromkeys(
        ("files.retrieve", "files.download", "files.get_signed_url", "libraries.get",
         "libraries.documents.list", "libraries.documents.get", "libraries.documents.status",
         "libraries.documents.text_content", "libraries.documents.get_signed_url",
         "libraries.documents.extracted_text_signed_url", "libraries.accesses.list",
         "batch.jobs.get"),
        ("403/403", "200/404", "200/404", "200/404"),
    ),
    **dict.fromkeys(
        ("files.list", "libraries.list", "batch.jobs.list"),
        ("403/403", "200/200", "200/200", "200/200"),
    ),
    **dict.fromkeys(
        ("files.delete", "libraries.update", "libraries.replace", "libraries.delete",
         "libraries.documents.upload", "libraries.documents.update",
         "libraries.documents.replace", "batch.jobs.create", "batch.jobs.cancel",
         "batch.jobs.delete"),
        ("403/403", "200/404", "200/404", "403/403"),
    ),
    "files.upload":                    ("403/403", "200/200", "200/200", "403/403"),
    "libraries.create":                ("403/403", "201/201", "201/201", "403/403"),
    "libraries.documents.delete":      ("403/403", "204/404", "204/404", "403/403"),
    "libraries.documents.reprocess":   ("403/403", "204/404", "204/404", "403/403"),
    "libraries.accesses.update_or_create": ("403/403", "200/404", "403/403", "403/403"),
    "libraries.accesses.delete":       ("403/403", "200/404", "403/403", "403/403"),
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
    owned = _seed_resources(admin)
    return {
        **owned,
        "conversation": conversation_id,
        "entry": entry["id"],
        "agent": agent_id,
        "key": spare.principal.key_id,
        "batch": "batch_seeded",
        "tenant": A,
    }


def _upload(path: str, key: NewKey, name: str) -> Any:
    answer = client("admin").post(
        path,
        data={"file": (io.BytesIO(b'{"custom_id": "1"}\n'), name), "purpose": "batch"},
        content_type="multipart/form-data",
        headers=bearer(key),
    )
    assert answer.status_code == 200, answer.get_data()
    return answer.get_json()


def _seed_resources(admin: NewKey) -> dict[str, str]:
    """A's file, library (shared with one user), document and batch job."""
    admin_app = client("admin")
    file_id = _upload("/v1/files", admin, "seed.jsonl")["id"]
    library = admin_app.post("/v1/libraries", json={"name": "seeded"}, headers=bearer(admin))
    library_id = library.get_json()["id"]
    document_id = _upload(f"/v1/libraries/{library_id}/documents", admin, "seed.txt")["id"]
    share = {"level": "Viewer", "share_with_uuid": "u1", "share_with_type": "User"}
    shared = admin_app.put(f"/v1/libraries/{library_id}/share", json=share, headers=bearer(admin))
    assert shared.status_code == 200, shared.get_data()
    job = admin_app.post(
        "/v1/batch/jobs",
        json={"input_files": [file_id], "endpoint": "/v1/chat/completions", "model": MODEL},
        headers=bearer(admin),
    )
    assert job.status_code == 200, job.get_data()
    return {
        "file": file_id,
        "library": library_id,
        "document": document_id,
        "job": job.get_json()["id"],
    }


def _send(function: str, path: str, method: str, body: Any, key: NewKey) -> Any:
    if isinstance(body, dict) and "__multipart__" in body:
        data = {"file": (io.BytesIO(b"{}\n"), body["__multipart__"]), "purpose": "batch"}
        return client(function).open(
            path, method=method, data=data, content_type="multipart/form-data", headers=bearer(key)
        )
    return client(function).open(path, method=method, json=body, headers=bearer(key))


def _fill(value: Any, world: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
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
            answer = _send(route.function, path, method, _fill(body, world), key)
        statuses.append(answer.status_code)
        if expected in (403, 404):
            assert error_code(answer.get_json()) in ("forbidden", "not_found"), answer.get_data()
    assert statuses == [expected] * len(found), (operation, role, tenant)
    if expected in (403, 404):
        assert standin.calls() == calls

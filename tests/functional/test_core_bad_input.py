"""Every row of the bad-input table (DESIGN section 7), on every function it applies to.

The functions: start (conversation writes), history (reads), admin (agents, keys, usage,
lifecycle) and batch. Batch's one working route besides health is the Pub/Sub push
route, which Cloud Run IAM guards instead of a gateway key: the key, role, body and
rate-limit rows do not apply to it; its health route still answers 503 when a
dependency is down. History has no request bodies and never calls Mistral, and every
role may read, so the 403, body and upstream rows do not apply to it.

Tenant isolation (another tenant's object answers 404) is walked route by route in
test_core_isolation.py; here the 404 row is the object that does not exist at all.
Every error answer goes through `error_body`, which checks the documented shape and
that no stack trace, SQL, key or internal name leaks into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.servers import free_port
from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.http import routes
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

OWNER = "tenant-core"
MODEL = "mistral-small-latest"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
KEYED_FUNCTIONS = ("start", "history", "admin")

# Text no error body may hold: stack traces, SQL, keys, paths, driver and host names.
LEAKS = (
    "traceback",
    'file "',
    "select ",
    "insert into",
    "update api_keys",
    "mgw_",
    "/work/",
    "site-packages",
    "pg8000",
    "psycopg",
    "redis.exceptions",
    "interfaceerror",
    "connectionrefused",
    "127.0.0.1",
    "postgresql://",
    "redis://",
    "test-upstream-key",
)


def error_body(answer: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    """The answer is `status` with the gateway's error body, and leaks nothing."""
    text = answer.get_data(as_text=True)
    assert answer.status_code == status, text
    assert answer.mimetype == "application/json"
    body = json.loads(text)
    assert body["object"] == "error"
    assert isinstance(body["type"], str)
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["request_id"] == answer.headers["X-Request-Id"]
    if kind is not None:
        assert error_code(body) == kind
    assert_no_leak(text)
    return dict(body)


def assert_no_leak(text: str) -> None:
    lowered = text.lower()
    for leak in LEAKS:
        assert leak not in lowered, f"{leak!r} in {text}"


# -- fixtures ------------------------------------------------------------------------------------


def _container(container: Container, base_settings: Settings, **changes: Any) -> Container:
    """A gateway container over the session's database and Redis, with changed settings.

    Its Mistral client (and circuit breaker) are its own, built from the settings."""
    defaults: dict[str, Any] = {"mistral_max_retries": 0, "breaker_failure_threshold": 1000}
    settings = dataclasses.replace(base_settings, **{**defaults, **changes})
    return Container(settings, pool=container.pool, redis_client=container.redis)


@pytest.fixture
def gateway(container: Container, standin: StandIn, base_settings: Settings) -> Iterator[Container]:
    standin.reset()
    gateway = _container(container, base_settings, mistral_server_url=standin.url)
    previous = set_container(gateway)
    yield gateway
    set_container(previous)


@contextlib.contextmanager
def installed(gateway: Container) -> Iterator[Container]:
    """`gateway` as the functions' container for the block."""
    previous = set_container(gateway)
    try:
        yield gateway
    finally:
        set_container(previous)


@dataclasses.dataclass(frozen=True)
class World:
    """One of each object the routes act on, all OWNER's, and OWNER's admin key."""

    admin: NewKey
    conversation_id: str
    entry_id: str
    agent_id: str
    key_id: str
    # Tenants are an operator's to create and change.
    operator: NewKey

    def key(self, template: str) -> NewKey:
        return self.operator if template.startswith("/gateway/v1/tenants") else self.admin

    def path(self, template: str) -> str:
        return template.format(
            conversation_id=self.conversation_id,
            agent_id=self.agent_id,
            key_id=self.key_id,
            entry_id=self.entry_id,
        )


@pytest.fixture
def world(gateway: Container) -> World:
    """Seeded in the database directly: every test here is refused before Mistral would
    need to know the objects, and a request that reaches it gets an injected fault."""
    admin = make_key(gateway, "admin", OWNER, **NO_LIMIT)
    spare = make_key(gateway, "user", OWNER)
    with gateway.pool.transaction() as conn:
        conn.run(
            "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
            " VALUES ('ag_core', :owner, 'core agent', :model, CAST(:body AS jsonb), now(), now())",
            owner=OWNER,
            model=MODEL,
            body=json.dumps({"id": "ag_core", "object": "agent", "name": "core agent"}),
        )
        conn.run(
            "INSERT INTO conversations (id, owner_id, model, created_at, updated_at)"
            " VALUES ('conv_core', :owner, :model, now(), now())",
            owner=OWNER,
            model=MODEL,
        )
        conn.run(
            "INSERT INTO conversation_entries"
            " (conversation_id, seq, id, owner_id, type, role, content, body, created_at)"
            " VALUES ('conv_core', 0, 'msg_core', :owner, 'message.input', 'user', 'hello',"
            " CAST('{}' AS jsonb), now())",
            owner=OWNER,
        )
    return World(
        admin=admin,
        operator=make_key(gateway, "operator", "operators", **NO_LIMIT),
        conversation_id="conv_core",
        entry_id="msg_core",
        agent_id="ag_core",
        key_id=spare.principal.key_id,
    )


def send(
    function: str,
    method: str,
    path: str,
    key: NewKey | None = None,
    body: Any = None,
    **kwargs: Any,
) -> Any:
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers.update(bearer(key))
    if body is not None:
        kwargs["json"] = body
    return client(function).open(path, method=method, headers=headers, **kwargs)


# One request per keyed function that an admin key may make, and that succeeds when all is well.
PROBES: dict[str, tuple[str, str, Any]] = {
    "start": ("POST", "/v1/conversations", {"model": MODEL, "inputs": "hi"}),
    "history": ("GET", "/v1/conversations", None),
    "admin": ("GET", "/gateway/v1/usage", None),
}


def probe(function: str, key: NewKey | None = None, **kwargs: Any) -> Any:
    method, path, body = PROBES[function]
    return send(function, method, path, key, body, **kwargs)


_DOC = "/v1/libraries/lib_core/documents/doc_core"
# Every route that takes a JSON body, with a valid body for it.
BODY_ROUTES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("conversations.start", "start", "POST", "/v1/conversations", {"model": MODEL, "inputs": "hi"}),
    (
        "conversations.append",
        "start",
        "POST",
        "/v1/conversations/{conversation_id}",
        {"inputs": "hi"},
    ),
    (
        "conversations.restart",
        "start",
        "POST",
        "/v1/conversations/{conversation_id}/restart",
        {"inputs": "hi", "from_entry_id": "{entry_id}"},
    ),
    ("agents.create", "admin", "POST", "/v1/agents", {"model": MODEL, "name": "another"}),
    ("agents.update", "admin", "PATCH", "/v1/agents/{agent_id}", {"description": "d"}),
    ("gateway.keys.create", "admin", "POST", "/gateway/v1/keys", {"name": "k", "role": "user"}),
    ("gateway.keys.update", "admin", "PATCH", "/gateway/v1/keys/{key_id}", {"name": "k2"}),
    ("gateway.tenants.create", "admin", "POST", "/gateway/v1/tenants", {"id": "t", "name": "T"}),
    ("gateway.tenants.update", "admin", "PATCH", "/gateway/v1/tenants/" + OWNER, {"name": "T"}),
    # metered pass-through: the body is checked before anything is counted or relayed
    *(
        (operation, "start", "POST", path, body)
        for operation, path, body in (
            ("chat.complete", "/v1/chat/completions", {"model": MODEL, "messages": []}),
            ("fim.complete", "/v1/fim/completions", {"model": MODEL, "prompt": "x"}),
            ("embeddings.create", "/v1/embeddings", {"model": MODEL, "input": "x"}),
            ("agents.complete", "/v1/agents/completions", {"agent_id": "{agent_id}"}),
            ("classifiers.classify", "/v1/classifications", {"model": MODEL, "input": "x"}),
            ("classifiers.classify_chat", "/v1/chat/classifications", {"model": MODEL}),
            ("classifiers.moderate", "/v1/moderations", {"model": MODEL, "input": "x"}),
            ("classifiers.moderate_chat", "/v1/chat/moderations", {"model": MODEL}),
            ("ocr.process", "/v1/ocr", {"model": MODEL, "document": {}}),
            ("audio.speech.complete", "/v1/audio/speech", {"input": "x"}),
        )
    ),
    # tenant-owned resources: the body is read before the object is looked for
    ("libraries.create", "admin", "POST", "/v1/libraries", {"name": "L"}),
    ("libraries.update", "admin", "PATCH", "/v1/libraries/lib_core", {"name": "L"}),
    ("libraries.replace", "admin", "PUT", "/v1/libraries/lib_core", {"name": "L"}),
    ("libraries.documents.update", "admin", "PATCH", _DOC, {"name": "D"}),
    ("libraries.documents.replace", "admin", "PUT", _DOC, {"name": "D"}),
    (
        "libraries.accesses.update_or_create",
        "admin",
        "PUT",
        "/v1/libraries/lib_core/share",
        {"level": "Viewer", "share_with_uuid": "u", "share_with_type": "User"},
    ),
    (
        "batch.jobs.create",
        "admin",
        "POST",
        "/v1/batch/jobs",
        {"endpoint": "/v1/embeddings", "model": MODEL, "requests": []},
    ),
]
# Uploads take multipart/form-data, relayed as it arrives (tests/functional/test_resources.py).
MULTIPART_WRITES = {"files.upload", "libraries.documents.upload", "audio.transcriptions.complete"}
# Writes that take no body: their input is the path or the query string.
BODILESS_WRITES = {
    "gateway.conversations.archive",
    "gateway.conversations.unarchive",
    "gateway.keys.revoke",
    "gateway.keys.rotate",
    "agents.update_version",  # ?version=
    "agents.create_alias",  # ?alias=&version=
    "gateway.batches.deliver",  # Pub/Sub push, not a gateway-key route (batch function)
    "gateway.batch_jobs.sweep",  # Cloud Scheduler, not a gateway-key route (batch function)
    "batch.jobs.cancel",
    "libraries.documents.reprocess",
}


def test_the_body_rows_cover_every_write_route() -> None:
    """Every POST/PATCH/PUT route is either tested with bodies here or known to take none."""
    writes = {r.operation for r in routes.ROUTES if r.method in ("POST", "PATCH", "PUT")}
    assert writes == {op for op, *_ in BODY_ROUTES} | BODILESS_WRITES | MULTIPART_WRITES


def _body_route_ids() -> list[str]:
    return [op for op, *_ in BODY_ROUTES]


def _fill(world: World, body: dict[str, Any]) -> dict[str, Any]:
    return {k: world.path(v) if isinstance(v, str) else v for k, v in body.items()}


# -- 401: no or malformed Authorization ----------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer mgw_short", "mgw_" + "a" * 43],
    ids=["none", "basic", "empty-bearer", "short-key", "no-scheme"],
)
@pytest.mark.parametrize("function", KEYED_FUNCTIONS)
def test_missing_or_malformed_authorization_is_401(
    gateway: Container, standin: StandIn, function: str, authorization: str | None
) -> None:
    """No or a malformed Authorization header: 401 with a Bearer challenge, nothing sent."""
    headers = {} if authorization is None else {"Authorization": authorization}
    calls = standin.calls()
    answer = probe(function, headers=headers)
    error_body(answer, 401, "unauthorized")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert standin.calls() == calls


# -- 401: unknown or revoked key -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unknown", "revoked", "rotated"])
@pytest.mark.parametrize("function", KEYED_FUNCTIONS)
def test_unknown_revoked_or_rotated_key_is_401(
    gateway: Container, standin: StandIn, function: str, kind: str
) -> None:
    """A key the gateway never issued, a revoked one, and a rotated key's old secret: 401."""
    admin = make_key(gateway, "admin", OWNER, **NO_LIMIT)
    victim = make_key(gateway, "admin", OWNER, **NO_LIMIT)
    assert probe("history", victim).status_code == 200  # cached as valid on this instance
    if kind == "unknown":
        victim = dataclasses.replace(victim, secret="mgw_" + "Z" * 43)
    else:
        action = "revoke" if kind == "revoked" else "rotate"
        path = f"/gateway/v1/keys/{victim.principal.key_id}/{action}"
        assert send("admin", "POST", path, admin).status_code == 200
    calls = standin.calls()
    error_body(probe(function, victim), 401, "unauthorized")
    assert standin.calls() == calls


# -- 403: the role lacks the action --------------------------------------------------------------

# History: every role reads, so no history route answers 403 (see test_core_permissions).
FORBIDDEN_CASES = [
    ("start", "read_only", "POST", "/v1/conversations", {"model": MODEL, "inputs": "hi"}),
    ("start", "read_only", "POST", "/v1/conversations/{conversation_id}", {"inputs": "hi"}),
    ("admin", "user", "POST", "/v1/agents", {"model": MODEL, "name": "mine"}),
    ("admin", "read_only", "GET", "/v1/agents", None),
    ("admin", "user", "DELETE", "/v1/conversations/{conversation_id}", None),
    ("admin", "user", "POST", "/gateway/v1/keys", {"name": "k", "role": "admin"}),
    ("admin", "read_only", "POST", "/gateway/v1/conversations/{conversation_id}/archive", None),
]


@pytest.mark.parametrize(
    ("function", "role", "method", "template", "body"),
    FORBIDDEN_CASES,
    ids=[f"{c[1]}-{c[2]}-{c[3]}" for c in FORBIDDEN_CASES],
)
def test_role_lacking_the_action_is_403(
    world: World,
    standin: StandIn,
    gateway: Container,
    function: str,
    role: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    """A key whose role lacks the action gets 403; nothing is sent upstream or changed."""
    key = make_key(gateway, role, OWNER, **NO_LIMIT)
    calls = standin.calls()
    answer = send(function, method, world.path(template), key, body)
    error_body(answer, 403, "forbidden")
    assert standin.calls() == calls
    with gateway.pool.connection() as conn:
        row = conn.one("SELECT status FROM conversations WHERE id = :id", id=world.conversation_id)
        keys = conn.one("SELECT count(*) AS n FROM api_keys WHERE owner_id = :o", o=OWNER)
    assert row == {"status": "active"}
    assert keys == {"n": 3}


# -- 404: no such object (another tenant's: test_core_isolation.py) ------------------------------

MISSING_CASES = [
    ("start", "POST", "/v1/conversations/conv_missing", {"inputs": "hi"}),
    (
        "start",
        "POST",
        "/v1/conversations/conv_missing/restart",
        {"inputs": "hi", "from_entry_id": "e"},
    ),
    ("start", "POST", "/v1/conversations", {"agent_id": "ag_missing", "inputs": "hi"}),
    ("history", "GET", "/v1/conversations/conv_missing", None),
    ("history", "GET", "/v1/conversations/conv_missing/messages", None),
    ("history", "GET", "/gateway/v1/batches/batch_missing", None),
    ("admin", "GET", "/v1/agents/ag_missing", None),
    ("admin", "DELETE", "/v1/conversations/conv_missing", None),
    ("admin", "POST", "/gateway/v1/keys/key_missing/revoke", None),
]


@pytest.mark.parametrize(
    ("function", "method", "path", "body"),
    MISSING_CASES,
    ids=[f"{c[1]}-{c[2]}" for c in MISSING_CASES],
)
def test_an_object_that_does_not_exist_is_404(
    gateway: Container,
    standin: StandIn,
    function: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """An id that names nothing is 404 before anything is sent upstream."""
    admin = make_key(gateway, "admin", OWNER, **NO_LIMIT)
    calls = standin.calls()
    error_body(send(function, method, path, admin, body), 404, "not_found")
    assert standin.calls() == calls


# -- 415: wrong Content-Type on a body -----------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
@pytest.mark.parametrize(
    ("operation", "function", "method", "template", "body"), BODY_ROUTES, ids=_body_route_ids()
)
def test_wrong_content_type_is_415(
    world: World,
    standin: StandIn,
    operation: str,
    function: str,
    method: str,
    template: str,
    body: dict[str, Any],
    content_type: str | None,
) -> None:
    """A JSON body sent as another media type (or none) is 415, and nothing is sent."""
    calls = standin.calls()
    raw = json.dumps(_fill(world, body)).encode()
    answer = send(
        function,
        method,
        world.path(template),
        world.key(template),
        data=raw,
        content_type=content_type,
    )
    error_body(answer, 415, "unsupported_media_type")
    assert standin.calls() == calls


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_with_parameters_or_other_case_is_accepted(world: World, content_type: str) -> None:
    """Media types are case-insensitive and may carry parameters: not a 415."""
    raw = json.dumps({"model": MODEL, "inputs": "hi"}).encode()
    answer = send(
        "start", "POST", "/v1/conversations", world.admin, data=raw, content_type=content_type
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


# -- 413: body over the limit --------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(
    ("operation", "function", "method", "template", "body"), BODY_ROUTES, ids=_body_route_ids()
)
def test_body_over_the_limit_is_413(
    world: World,
    container: Container,
    base_settings: Settings,
    standin: StandIn,
    operation: str,
    function: str,
    method: str,
    template: str,
    body: dict[str, Any],
    framing: str,
) -> None:
    """A body one byte over its limit is 413, whether its length is announced or not
    (MAX_BODY_BYTES; MAX_MEDIA_BODY_BYTES for a call that may carry media, with its length
    announced: both 2048 here)."""
    small = _container(
        container,
        base_settings,
        mistral_server_url=standin.url,
        max_body_bytes=2048,
        max_media_body_bytes=2048,
    )
    filled = _fill(world, body)
    filled["padding"] = ""
    raw = json.dumps(filled).encode()
    raw = json.dumps({**filled, "padding": "x" * (2049 - len(raw))}).encode()
    assert len(raw) == 2049
    calls = standin.calls()
    with installed(small):
        if framing == "content-length":
            answer = send(
                function,
                method,
                world.path(template),
                world.key(template),
                data=raw,
                content_type="application/json",
            )
        else:
            # What a server hands on for `Transfer-Encoding: chunked`: no length, a stream.
            answer = send(
                function,
                method,
                world.path(template),
                world.key(template),
                input_stream=io.BytesIO(raw),
                headers={"Transfer-Encoding": "chunked"},
                environ_overrides={"wsgi.input_terminated": True},
                content_type="application/json",
            )
    error_body(answer, 413, "payload_too_large")
    assert standin.calls() == calls


# -- 400: invalid JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"inputs": ', b"\xff\xfe{}", b"", b"{'single': 'quotes'}"],
    ids=["cut", "not-utf8", "empty", "quotes"],
)
@pytest.mark.parametrize(
    ("operation", "function", "method", "template", "body"), BODY_ROUTES, ids=_body_route_ids()
)
def test_invalid_json_is_400(
    world: World,
    standin: StandIn,
    operation: str,
    function: str,
    method: str,
    template: str,
    body: dict[str, Any],
    raw: bytes,
) -> None:
    """A body that is not JSON is 400 invalid_json, and nothing is sent."""
    calls = standin.calls()
    answer = send(
        function,
        method,
        world.path(template),
        world.key(template),
        data=raw,
        content_type="application/json",
    )
    error_body(answer, 400, "invalid_json")
    assert standin.calls() == calls


# -- 422: wrong fields or types ------------------------------------------------------------------

INVALID_CASES: list[tuple[str, str, str, Any, tuple[str, ...]]] = [
    ("start", "POST", "/v1/conversations", [1, 2], ("body",)),
    ("start", "POST", "/v1/conversations", {"model": MODEL, "inputs": 7}, ("body", "inputs")),
    ("start", "POST", "/v1/conversations", {"model": MODEL}, ("body", "inputs")),
    (
        "start",
        "POST",
        "/v1/conversations",
        {"model": MODEL, "agent_id": "a", "inputs": "x"},
        ("body",),
    ),
    (
        "start",
        "POST",
        "/v1/conversations",
        {"model": MODEL, "inputs": "x", "stream": "yes"},
        ("body", "stream"),
    ),
    ("start", "POST", "/v1/conversations/{conversation_id}", {"store": True}, ("body", "inputs")),
    (
        "start",
        "POST",
        "/v1/conversations/{conversation_id}/restart",
        {"inputs": "x"},
        ("body", "from_entry_id"),
    ),
    ("history", "GET", "/v1/conversations?page_size=0", None, ("query", "page_size")),
    ("history", "GET", "/v1/conversations?page=abc", None, ("query", "page")),
    ("history", "GET", "/gateway/v1/conversations?status=gone", None, ("query", "status")),
    ("admin", "POST", "/v1/agents", {"model": MODEL}, ("body", "name")),
    ("admin", "PATCH", "/v1/agents/{agent_id}", {"name": 5}, ("body", "name")),
    ("admin", "POST", "/gateway/v1/keys", {"name": "k", "role": "root"}, ("body", "role")),
    (
        "admin",
        "PATCH",
        "/gateway/v1/keys/{key_id}",
        {"rate_limit_requests": 0},
        ("body", "rate_limit_requests"),
    ),
    ("admin", "PATCH", "/gateway/v1/keys/{key_id}", {"rate_limt": 5}, ("body", "rate_limt")),
    ("admin", "GET", "/v1/agents?page_size=-1", None, ("query", "page_size")),
]


@pytest.mark.parametrize(
    ("function", "method", "template", "body", "loc"),
    INVALID_CASES,
    ids=[f"{c[1]}-{c[2]}-{'.'.join(c[4])}" for c in INVALID_CASES],
)
def test_wrong_fields_or_types_are_422_with_a_detail_list(
    world: World,
    standin: StandIn,
    function: str,
    method: str,
    template: str,
    body: Any,
    loc: tuple[str, ...],
) -> None:
    """Bad fields are 422 with `detail` entries of loc, msg and type, as the SDK parses."""
    calls = standin.calls()
    answer = send(function, method, world.path(template), world.admin, body)
    error = error_body(answer, 422, "validation_error")
    assert isinstance(error["detail"], list)
    assert error["detail"]
    for entry in error["detail"]:
        assert set(entry) == {"loc", "msg", "type"}
        assert isinstance(entry["loc"], list)
        assert entry["loc"][0] in ("body", "query")
        assert isinstance(entry["msg"], str)
        assert entry["msg"]
        assert isinstance(entry["type"], str)
        assert entry["type"]
    assert list(loc) in [e["loc"] for e in error["detail"]]
    assert standin.calls() == calls


# -- 429: rate limit or token budget exceeded ----------------------------------------------------


@pytest.mark.parametrize("function", KEYED_FUNCTIONS)
def test_rate_limit_exceeded_is_429_with_retry_after(
    gateway: Container, standin: StandIn, function: str
) -> None:
    """Over the key's limit: 429 + Retry-After + RateLimit headers, and nothing sent upstream."""
    key = make_key(gateway, "admin", OWNER, rate_limit_requests=2, rate_limit_window=3600)
    assert probe(function, key).status_code == 200
    assert probe(function, key).status_code == 200
    calls = standin.calls()
    answer = probe(function, key)
    error_body(answer, 429, "rate_limited")
    # Two per hour: the next one is free 30 minutes after the first.
    assert 1790 <= int(answer.headers["Retry-After"]) <= 1800
    assert answer.headers["RateLimit-Limit"] == "2"
    assert answer.headers["RateLimit-Remaining"] == "0"
    assert standin.calls() == calls


def test_token_budget_exceeded_is_429_with_retry_after(
    gateway: Container, standin: StandIn
) -> None:
    """A turn whose token reservation exceeds the budget is 429 and not sent (only start spends)."""
    key = make_key(gateway, "user", OWNER, token_budget_per_minute=100, **NO_LIMIT)
    calls = standin.calls()
    answer = probe("start", key)
    body = error_body(answer, 429, "token_budget_exceeded")
    assert "token budget" in body["message"]
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert standin.calls() == calls
    with gateway.pool.connection() as conn:
        assert conn.one("SELECT count(*) AS n FROM conversations") == {"n": 0}


# -- Mistral 4xx: the same status and body -------------------------------------------------------


def _standin_answer(standin: StandIn, fault: str) -> tuple[int, bytes]:
    """What the stand-in itself answers for `fault`: the status and body to expect."""
    request = urllib.request.Request(  # noqa: S310 (the local stand-in's http URL)
        standin.url + "/v1/conversations",
        data=b"{}",
        method="POST",
        headers={
            "Authorization": "Bearer x",
            "Content-Type": "application/json",
            "x-standin-fault": fault,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# History never calls Mistral: it answers from the gateway's database alone.
UPSTREAM_CASES = [
    ("start", "conversations.start", "POST", "/v1/conversations", {"model": MODEL, "inputs": "x"}),
    (
        "start",
        "conversations.append",
        "POST",
        "/v1/conversations/{conversation_id}",
        {"inputs": "x"},
    ),
    ("admin", "agents.create", "POST", "/v1/agents", {"model": MODEL, "name": "upstream"}),
    ("admin", "agents.list_versions", "GET", "/v1/agents/{agent_id}/versions", None),
]
_UPSTREAM_IDS = [c[1] for c in UPSTREAM_CASES]


@pytest.mark.parametrize(
    "fault", ["status=400", "status=404", "status=422", "status=429;retry_after=3"]
)
@pytest.mark.parametrize(
    ("function", "operation", "method", "template", "body"), UPSTREAM_CASES, ids=_UPSTREAM_IDS
)
def test_mistral_4xx_is_relayed_with_the_same_status_and_body(
    world: World,
    standin: StandIn,
    function: str,
    operation: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
    fault: str,
) -> None:
    """Mistral's own refusal reaches the caller as Mistral sent it (429 with its Retry-After)."""
    status, expected = _standin_answer(standin, fault)
    standin.inject(fault, count=1, operation=operation)
    answer = send(function, method, world.path(template), world.admin, body)
    assert answer.status_code == status
    assert answer.get_data() == expected
    if status == 429:
        assert answer.headers["Retry-After"] == "3"
    assert_no_leak(answer.get_data(as_text=True))


# -- Mistral down, timing out, or circuit open: 502 / 503 / 504 ----------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "kind", "retry_after"),
    [
        ("status=500", 502, "upstream_unavailable", None),
        ("status=503;retry_after=7", 502, "upstream_unavailable", "7"),
        ("reset", 502, "upstream_unavailable", None),
        ("status=504", 504, "upstream_timeout", None),
        ("timeout=5000", 504, "upstream_timeout", None),
    ],
    ids=["500", "503", "reset", "504", "timeout"],
)
@pytest.mark.parametrize(
    ("function", "operation", "method", "template", "body"), UPSTREAM_CASES, ids=_UPSTREAM_IDS
)
def test_mistral_failing_is_502_or_504(
    world: World,
    container: Container,
    base_settings: Settings,
    standin: StandIn,
    function: str,
    operation: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
    fault: str,
    status: int,
    kind: str,
    retry_after: str | None,
) -> None:
    """Mistral 5xx, reset or timeout: 502 or 504, with Mistral's Retry-After when it gave one."""
    impatient = _container(
        container, base_settings, mistral_server_url=standin.url, mistral_timeout_ms=300
    )
    standin.inject(fault, count=1, operation=operation)
    with installed(impatient):
        answer = send(function, method, world.path(template), world.admin, body)
    error_body(answer, status, kind)
    assert answer.headers.get("Retry-After") == retry_after


@pytest.mark.parametrize(
    ("function", "operation", "method", "template", "body"), UPSTREAM_CASES, ids=_UPSTREAM_IDS
)
def test_mistral_unreachable_is_502(
    world: World,
    container: Container,
    base_settings: Settings,
    function: str,
    operation: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    """Nothing listening where Mistral should be: 502 upstream_unavailable."""
    down = _container(
        container, base_settings, mistral_server_url=f"http://127.0.0.1:{free_port()}"
    )
    with installed(down):
        answer = send(function, method, world.path(template), world.admin, body)
    error_body(answer, 502, "upstream_unavailable")


@pytest.mark.parametrize(
    ("function", "operation", "method", "template", "body"), UPSTREAM_CASES, ids=_UPSTREAM_IDS
)
def test_open_circuit_is_503_with_retry_after_and_nothing_sent(
    world: World,
    container: Container,
    base_settings: Settings,
    standin: StandIn,
    function: str,
    operation: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    """Once Mistral's failures open the circuit, calls fail fast: 503 + Retry-After, unsent."""
    fragile = _container(
        container,
        base_settings,
        mistral_server_url=standin.url,
        breaker_failure_threshold=1,
        breaker_cooldown_s=30,
    )
    standin.inject("status=500", count=1, operation=operation)
    with installed(fragile):
        error_body(send(function, method, world.path(template), world.admin, body), 502)
        calls = standin.calls()
        answer = send(function, method, world.path(template), world.admin, body)
    error_body(answer, 503, "circuit_open")
    assert 1 <= int(answer.headers["Retry-After"]) <= 30
    assert standin.calls() == calls


# -- database or Redis unreachable: 503 + Retry-After, nothing half-written ----------------------


@pytest.mark.parametrize("function", KEYED_FUNCTIONS)
def test_database_unreachable_is_503_with_retry_after(
    container: Container, base_settings: Settings, standin: StandIn, function: str
) -> None:
    """No database: a keyed request is a prompt 503 + Retry-After, with nothing sent upstream."""
    key = make_key(container, "admin", OWNER, **NO_LIMIT)
    settings = dataclasses.replace(
        base_settings,
        mistral_server_url=standin.url,
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/gateway_test",
        db_pool_timeout_ms=200,
    )
    down = Container(settings, redis_client=container.redis)
    calls = standin.calls()
    started = time.perf_counter()
    with installed(down):
        answer = probe(function, key)
    assert time.perf_counter() - started < 1.5
    error_body(answer, 503, "service_unavailable")
    assert int(answer.headers["Retry-After"]) >= 1
    assert standin.calls() == calls


@pytest.mark.parametrize("function", KEYED_FUNCTIONS)
def test_redis_unreachable_fail_closed_is_503_with_nothing_written(
    gateway: Container,
    container: Container,
    base_settings: Settings,
    standin: StandIn,
    function: str,
) -> None:
    """No Redis, fail-closed: 503 + Retry-After, nothing sent upstream, nothing stored."""
    key = make_key(gateway, "admin", OWNER, **NO_LIMIT)
    settings = dataclasses.replace(
        gateway.settings,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_failure_mode="fail-closed",
    )
    down = Container(settings, pool=container.pool)
    calls = standin.calls()
    try:
        with installed(down):
            answer = probe(function, key)
    finally:
        down.redis.close()
    error_body(answer, 503, "service_unavailable")
    assert int(answer.headers["Retry-After"]) >= 1
    assert standin.calls() == calls
    with container.pool.connection() as conn:
        assert conn.one("SELECT count(*) AS n FROM conversations") == {"n": 0}
        assert conn.one("SELECT count(*) AS n FROM usage_events") == {"n": 0}


@pytest.mark.parametrize("function", routes.FUNCTIONS)
@pytest.mark.parametrize("dependency", ["database", "redis"])
def test_health_is_503_with_retry_after_when_a_dependency_is_down(
    container: Container, base_settings: Settings, function: str, dependency: str
) -> None:
    """Every function's health route (batch's too) names the dependency that is down."""
    closed = free_port()
    changes = (
        {"database_url": f"postgresql://postgres@127.0.0.1:{closed}/x", "db_pool_timeout_ms": 200}
        if dependency == "database"
        else {"redis_url": f"redis://127.0.0.1:{closed}/0"}
    )
    down = Container(dataclasses.replace(base_settings, **changes))
    try:
        with installed(down):
            answer = client(function).get(routes.health_path(function))
    finally:
        down.close()
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 1
    body = answer.get_json()
    assert body[dependency]["ok"] is False
    assert_no_leak(answer.get_data(as_text=True))

"""Values PostgreSQL cannot store (issue 16, finding 1): refused before Mistral when a
caller sends them, and never poisoning a conversation when Mistral holds them."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, make_key

MODEL = "mistral-small-latest"
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400")


@pytest.fixture
def gateway(container: Container, base_settings: Settings, standin: StandIn) -> Iterator[Container]:
    """A container whose Mistral is the stand-in, over the test's empty tables."""
    standin.reset()
    settings = dataclasses.replace(
        base_settings, mistral_server_url=standin.url, breaker_failure_threshold=1000
    )
    local = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(local)
    yield local
    set_container(previous)


@pytest.fixture
def key(gateway: Container) -> NewKey:
    return make_key(gateway, "user", owner="tenant-a")


def _post(key: NewKey, path: str, raw: str) -> Any:
    return client("start").post(
        path, data=raw, headers={**bearer(key), "Content-Type": "application/json"}
    )


def _rows(container: Container, sql: str, **params: Any) -> list[dict[str, Any]]:
    with container.pool.connection() as conn:
        return conn.all(sql, **params)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("operation", ["start", "append"])
@pytest.mark.parametrize("position", ["metadata", "entry field"])
@pytest.mark.parametrize("value", NON_FINITE)
def test_a_non_finite_number_is_422_and_never_reaches_mistral(
    gateway: Container,
    key: NewKey,
    standin: StandIn,
    value: str,
    position: str,
    operation: str,
    stream: bool,
) -> None:
    """NaN, Infinity, -Infinity and 1e400 anywhere in a turn's body: 422 naming it, no call."""
    path = "/v1/conversations"
    if operation == "append":
        started = _post(key, path, json.dumps({"inputs": "first", "model": MODEL}))
        path += "/" + started.get_json()["conversation_id"]
    head = f'"model": "{MODEL}", ' if operation == "start" else ""
    if position == "metadata":
        raw = "{" + head + '"inputs": "x", "metadata": {"score": ' + value + "}"
        loc = ["body", "metadata", "score"]
    else:
        raw = "{" + head + '"inputs": [{"role": "user", "content": "x", "weight": ' + value + "}]"
        loc = ["body", "inputs", 0, "weight"]
    raw += ', "stream": ' + json.dumps(stream) + "}"
    before = standin.calls()
    answer = _post(key, path, raw)
    assert answer.status_code == 422
    assert answer.get_json()["detail"][0]["loc"] == loc
    assert answer.get_json()["detail"][0]["type"] == "finite_number"
    assert standin.calls() == before


def test_a_finite_float_still_passes(gateway: Container, key: NewKey) -> None:
    """Ordinary numbers (1.5, 1e300, -0.0) are not mistaken for non-finite ones."""
    raw = '{"model": "' + MODEL + '", "inputs": "x", "metadata": {"a": 1.5, "b": 1e300, "c": -0.0}}'
    answer = _post(key, "/v1/conversations", raw)
    assert answer.status_code == 200
    assert "Gateway-Stored" not in answer.headers


def _standin_append(standin: StandIn, conversation_id: str, inputs: list[dict[str, Any]]) -> None:
    """An append sent to Mistral directly, as another client of the same account could."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{standin.url}/v1/conversations/{conversation_id}",
        data=json.dumps({"inputs": inputs}).encode(),
        headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
        assert reply.status == 200


def _upstream_history(standin: StandIn, conversation_id: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{standin.url}/v1/conversations/{conversation_id}/history",
        headers={"Authorization": "Bearer x"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
        entries: list[dict[str, Any]] = json.loads(reply.read())["entries"]
        return entries


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_entry_the_database_cannot_hold_does_not_poison_the_conversation(
    gateway: Container, key: NewKey, standin: StandIn, stream: bool
) -> None:
    """An entry in Mistral's history with a NUL is stored marked unstorable; later turns store."""
    started = _post(key, "/v1/conversations", json.dumps({"inputs": "hello", "model": MODEL}))
    conversation_id = started.get_json()["conversation_id"]
    _standin_append(standin, conversation_id, [{"role": "user", "content": "bad\u0000byte"}])
    path = f"/v1/conversations/{conversation_id}"
    for text in ("after", "and after"):
        answer = _post(key, path, json.dumps({"inputs": text, "stream": stream}))
        assert answer.status_code == 200
        assert "Gateway-Stored" not in answer.headers
        assert b"gateway-stored: false" not in answer.get_data()
    stored = _rows(
        gateway,
        "SELECT id, status, content FROM conversation_entries WHERE conversation_id = :id"
        " ORDER BY seq",
        id=conversation_id,
    )
    upstream = _upstream_history(standin, conversation_id)
    assert [r["id"] for r in stored] == [e["id"] for e in upstream]
    assert [r["status"] for r in stored].count("unstorable") == 1
    poisoned = next(r for r in stored if r["status"] == "unstorable")
    assert poisoned["content"] == "bad\ufffdbyte"
    usage = _rows(
        gateway,
        "SELECT count(*) AS n FROM usage_events WHERE conversation_id = :id",
        id=conversation_id,
    )
    assert usage == [{"n": 3}]


@pytest.mark.parametrize(
    ("function", "method", "path", "role", "raw", "loc"),
    [
        ("admin", "POST", "/v1/agents", "admin", '{"name": "n", "model": "m", "x": NaN}', "x"),
        (
            "admin",
            "POST",
            "/gateway/v1/keys",
            "admin",
            '{"name": "n", "role": "user", "rate_limit_requests": Infinity}',
            "rate_limit_requests",
        ),
        (
            "start",
            "POST",
            "/v1/conversations/conv_x/restart",
            "user",
            '{"inputs": "x", "from_entry_id": "e", "metadata": {"m": -Infinity}}',
            "metadata",
        ),
    ],
    ids=["agent create", "key create", "restart"],
)
def test_every_json_route_refuses_a_non_finite_number(
    gateway: Container,
    standin: StandIn,
    function: str,
    method: str,
    path: str,
    role: str,
    raw: str,
    loc: str,
) -> None:
    """The same 422 on the other routes that take a JSON body, before anything else."""
    caller = make_key(gateway, role, owner="tenant-a")
    answer = client(function).open(
        path,
        method=method,
        data=raw,
        headers={**bearer(caller), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert loc in answer.get_json()["detail"][0]["loc"]
    assert sum(standin.calls().values()) == 0

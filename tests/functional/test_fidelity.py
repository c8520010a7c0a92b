"""The gateway answers as Mistral does where it used to differ (issue 18).

Each test drives the functions' own apps against the Mistral stand-in and checks one
behaviour a program written against Mistral relies on.
"""

from __future__ import annotations

import json

import pytest

from devstack.standin import StandIn
from shared.container import Container
from shared.errors import UpstreamRejected
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

MODEL = "mistral-small-latest"
OWNER = "tenant-fidelity"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


@pytest.fixture
def admin(gateway: Container) -> NewKey:
    return make_key(gateway, "admin", OWNER, **NO_LIMIT)


def _agent_with_two_versions(admin: NewKey) -> str:
    app = client("admin")
    agent = app.post("/v1/agents", json={"model": MODEL, "name": "v"}, headers=bearer(admin))
    agent_id = str(agent.get_json()["id"])
    app.patch(f"/v1/agents/{agent_id}", json={"instructions": "v1"}, headers=bearer(admin))
    made = app.put(f"/v1/agents/{agent_id}/aliases?alias=stable&version=0", headers=bearer(admin))
    assert made.status_code == 200
    return agent_id


@pytest.mark.parametrize(("sent", "resolved"), [(None, 1), ("stable", 0), (0, 0), ("1", 1)])
def test_agent_version_is_the_resolved_integer_on_get_and_list(
    gateway: Container, admin: NewKey, sent: object, resolved: int
) -> None:
    """A conversation's agent_version is the version Mistral ran (an alias, none, a digit
    string each resolved to the integer), on get and on list, as the stand-in answers."""
    agent_id = _agent_with_two_versions(admin)
    body: dict[str, object] = {"agent_id": agent_id, "inputs": "hi"}
    if sent is not None:
        body["agent_version"] = sent
    started = client("start").post("/v1/conversations", json=body, headers=bearer(admin))
    assert started.status_code == 200, started.get_json()
    conversation_id = started.get_json()["conversation_id"]
    history = client("history")
    got = history.get(f"/v1/conversations/{conversation_id}", headers=bearer(admin)).get_json()
    listed = history.get("/v1/conversations", headers=bearer(admin)).get_json()
    upstream = gateway.mistral.call(
        "conversations.get", "GET", f"/v1/conversations/{conversation_id}"
    ).json()
    assert got["agent_version"] == resolved == upstream["agent_version"]
    assert [c["agent_version"] for c in listed if c["id"] == conversation_id] == [resolved]


_RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.mark.parametrize(
    ("function", "method", "path", "body", "status"),
    [
        ("admin", "POST", "/v1/agents", {"model": MODEL, "name": "x"}, 403),
        ("start", "POST", "/v1/conversations", {"inputs": 5}, 422),
        ("start", "POST", "/v1/conversations/conv_missing", {"inputs": "hi"}, 404),
        ("history", "GET", "/v1/conversations/conv_missing", None, 404),
        ("admin", "GET", "/v1/agents/ag_missing", None, 404),
    ],
)
def test_refusals_after_authentication_carry_ratelimit_headers(
    gateway: Container, function: str, method: str, path: str, body: object, status: int
) -> None:
    """403, 422 and 404 answers to a known key carry RateLimit-*, as the document says."""
    user = make_key(gateway, "user", OWNER, rate_limit_requests=50, rate_limit_window=60)
    answer = client(function).open(path, method=method, json=body, headers=bearer(user))
    assert answer.status_code == status
    assert all(name in answer.headers for name in _RATE_HEADERS), dict(answer.headers)
    assert answer.headers["RateLimit-Limit"] == "50"


@pytest.mark.parametrize(
    ("function", "path"),
    [
        ("admin", "/v1/agents/pages?page_size=5000"),
        ("admin", "/v1/agents?page_size=5000"),
        ("history", "/v1/conversations?page_size=5000"),
        ("history", f"/v1/conversations?page_size={10**30}"),
    ],
)
def test_a_page_size_above_1000_is_served_as_mistral_serves_it(
    gateway: Container, admin: NewKey, standin: StandIn, function: str, path: str
) -> None:
    """page_size above 1000 is 200 on Mistral's lists (the stand-in accepts it too)."""
    answer = client(function).get(path, headers=bearer(admin))
    assert answer.status_code == 200, answer.get_json()
    direct = gateway.mistral.call("list", "GET", path.replace(f"{10**30}", "5000"))
    assert direct.status == 200


def test_a_bad_page_token_is_400_with_mistrals_body(gateway: Container, admin: NewKey) -> None:
    """An unknown page_token on agents.list_pages is 400 invalid_page_token, as the stand-in's."""
    path = "/v1/agents/pages?page_token=bm90LWEtdG9rZW4"
    answer = client("admin").get(path, headers=bearer(admin))
    assert answer.status_code == 400
    body = answer.get_json()
    assert error_code(body) == "invalid_page_token"
    with pytest.raises(UpstreamRejected) as refused:
        gateway.mistral.call("agents.list_pages", "GET", path)
    assert refused.value.status == 400
    upstream = json.loads(refused.value.raw_body)
    assert {k: v for k, v in body.items() if k != "request_id"} == upstream


def test_an_idempotent_repeat_with_keys_in_another_order_is_a_replay(
    gateway: Container, admin: NewKey, standin: StandIn
) -> None:
    """The same JSON written with its keys reordered and other spacing replays the first answer."""
    first = b'{"model": "mistral-small-latest", "inputs": "once", "metadata": {"a": 1, "b": 2}}'
    again = b'{"metadata":{"b":2,"a":1},"inputs":"once","model":"mistral-small-latest"}'
    answers = [
        client("start").post(
            "/v1/conversations",
            data=raw,
            content_type="application/json",
            headers={**bearer(admin), "Idempotency-Key": "reordered"},
        )
        for raw in (first, again)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert answers[1].get_data() == answers[0].get_data()
    assert standin.calls()["conversations.start"] == 1


@pytest.mark.parametrize("function", ["start", "history", "admin", "batch"])
@pytest.mark.parametrize("path", ["/favicon.ico", "/robots.txt"])
def test_the_frameworks_own_404_is_the_gateways_error_with_a_request_id(
    gateway: Container, function: str, path: str
) -> None:
    """Paths functions-framework answers itself get the gateway's 404 and X-Request-Id."""
    answer = client(function).get(path, headers={"X-Request-Id": "fallback-1"})
    assert answer.status_code == 404
    assert answer.headers["X-Request-Id"] == "fallback-1"
    assert error_code(answer.get_json()) == "route_not_found"

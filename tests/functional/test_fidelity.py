"""The gateway answers as Mistral does where it used to differ (issue 18).

Each test drives the functions' own apps against the Mistral stand-in and checks one
behaviour a program written against Mistral relies on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.keys import NewKey
from shared.mistral import MistralClient, build_client
from tests.support import bearer, client, make_key

MODEL = "mistral-small-latest"
OWNER = "tenant-fidelity"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def mistral(base_settings: Settings, standin: StandIn) -> MistralClient:
    return build_client(dataclasses.replace(base_settings, mistral_server_url=standin.url), None)


@pytest.fixture
def gateway(
    container: Container, standin: StandIn, base_settings: Settings, mistral: MistralClient
) -> Iterator[Container]:
    """The gateway's container talking to a fresh stand-in, over empty tables."""
    standin.reset()
    settings = dataclasses.replace(base_settings, mistral_server_url=standin.url)
    gateway = Container(
        settings, pool=container.pool, redis_client=container.redis, mistral=mistral
    )
    previous = set_container(gateway)
    yield gateway
    set_container(previous)


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

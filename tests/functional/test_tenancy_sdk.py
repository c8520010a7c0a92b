"""Allow-lists and rotation with a grace window, through the unchanged mistralai SDK."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mistralai.client import Mistral, errors

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from tests.support import bearer, client, dispatch, error_code, make_key, served

MODEL = "mistral-small-latest"
OTHER_MODEL = "mistral-large-latest"
OWNER = "tenant-sdk-allow"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served(dispatch) as url:
        yield url


@pytest.fixture
def gateway(container: Container, base_settings: Settings) -> Iterator[tuple[Container, StandIn]]:
    with StandIn() as standin:
        settings = dataclasses.replace(base_settings, mistral_server_url=standin.url)
        gateway = Container(settings, pool=container.pool, redis_client=container.redis)
        previous = set_container(gateway)
        yield gateway, standin
        set_container(previous)


def _new_key(admin: Any, **fields: Any) -> dict[str, Any]:
    answer = client("admin").post(
        "/gateway/v1/keys",
        json={"name": "limited", "role": "user", **NO_LIMIT, **fields},
        headers=bearer(admin),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return dict(answer.get_json())


def test_allow_lists_refuse_other_agents_and_models_before_mistral(
    gateway: tuple[Container, StandIn], url: str
) -> None:
    """A key limited to one agent and one model: those work (an alias too); others are 403
    naming the field, and Mistral is not called for them."""
    container, standin = gateway
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    as_admin = Mistral(api_key=admin.secret, server_url=url)
    allowed = as_admin.beta.agents.create(model=MODEL, name="allowed")
    other = as_admin.beta.agents.create(model=MODEL, name="other")
    as_admin.beta.agents.create_version_alias(agent_id=allowed.id, alias="stable", version=0)
    made = _new_key(admin, allowed_agents=[allowed.id], allowed_models=[MODEL])
    assert made["key"]["allowed_agents"] == [allowed.id]
    sdk = Mistral(api_key=made["secret"], server_url=url)
    conversations = sdk.beta.conversations

    started = conversations.start(agent_id=allowed.id, inputs="hi")
    conversations.append(conversation_id=started.conversation_id, inputs="more")
    conversations.start(agent_id=allowed.id, agent_version="stable", inputs="via alias")
    conversations.start(model=MODEL, inputs="hi")
    calls = standin.calls()
    for kwargs, field in (
        ({"agent_id": other.id}, "allowed_agents"),
        ({"model": OTHER_MODEL}, "allowed_models"),
    ):
        with pytest.raises(errors.SDKError) as refused:
            conversations.start(inputs="no", **kwargs)
        assert refused.value.status_code == 403
        assert field in refused.value.body
    assert standin.calls() == calls


def test_an_allow_list_may_not_name_another_tenants_agent(
    gateway: tuple[Container, StandIn],
) -> None:
    """allowed_agents naming another tenant's agent is 404, as for an agent that does not exist."""
    container, _ = gateway
    theirs = make_key(container, "admin", "tenant-sdk-other", **NO_LIMIT)
    agent = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": "theirs"}, headers=bearer(theirs)
    )
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    for agent_id in (agent.get_json()["id"], "ag_missing"):
        answer = client("admin").post(
            "/gateway/v1/keys",
            json={"name": "x", "role": "user", "allowed_agents": [agent_id]},
            headers=bearer(admin),
        )
        assert answer.status_code == 404


def test_a_rotated_secret_works_for_its_grace_window_then_stops(
    gateway: tuple[Container, StandIn], url: str
) -> None:
    """rotate with grace_s=1: the old secret works at once, is 401 once the window and the
    key cache's TTL have passed; the new one works throughout."""
    container, _ = gateway
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    made = _new_key(admin)
    old = Mistral(api_key=made["secret"], server_url=url)
    old.beta.conversations.list()
    rotated = client("admin").post(
        f"/gateway/v1/keys/{made['key']['id']}/rotate", json={"grace_s": 1}, headers=bearer(admin)
    )
    body = rotated.get_json()
    assert body["key"]["previous_secret_expires_at"] is not None
    new = Mistral(api_key=body["secret"], server_url=url)
    old.beta.conversations.list()  # inside the grace window
    new.beta.conversations.list()
    time.sleep(1.2)
    container.keys.forget()  # the revocation delay (the key cache's TTL), elapsed
    with pytest.raises(errors.SDKError) as refused:
        old.beta.conversations.list()
    assert refused.value.status_code == 401
    new.beta.conversations.list()
    listed = client("admin").get("/gateway/v1/keys", headers=bearer(admin)).get_json()["data"]
    mine = next(k for k in listed if k["id"] == made["key"]["id"])
    assert mine["previous_secret_expires_at"] is None  # the window is over


def test_a_rotation_without_grace_stops_the_old_secret_at_once(
    gateway: tuple[Container, StandIn], url: str
) -> None:
    """rotate with no body: the old secret is 401 on the next request here."""
    container, _ = gateway
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    made = _new_key(admin)
    client("admin").post(f"/gateway/v1/keys/{made['key']['id']}/rotate", headers=bearer(admin))
    with pytest.raises(errors.SDKError) as refused:
        Mistral(api_key=made["secret"], server_url=url).beta.conversations.list()
    assert refused.value.status_code == 401


def test_a_grace_window_beyond_seven_days_is_422(gateway: tuple[Container, StandIn]) -> None:
    """grace_s above 604800, negative or not an integer: 422 naming grace_s."""
    container, _ = gateway
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    made = _new_key(admin)
    for grace in (604_801, -1, "60"):
        answer = client("admin").post(
            f"/gateway/v1/keys/{made['key']['id']}/rotate",
            json={"grace_s": grace},
            headers=bearer(admin),
        )
        assert answer.status_code == 422
        assert answer.get_json()["detail"][0]["loc"] == ["body", "grace_s"]


def _entry(container: Container, conversation_id: str) -> str:
    with container.pool.connection() as conn:
        row = conn.one(
            "SELECT id FROM conversation_entries WHERE conversation_id = :c"
            " AND type = 'message.output'",
            c=conversation_id,
        )
    assert row is not None
    return str(row["id"])


def test_a_restart_from_another_tenants_entry_is_refused_as_a_missing_one(
    gateway: tuple[Container, StandIn],
) -> None:
    """B restarting its conversation from A's entry gets the 404 of a missing entry, and
    Mistral is not asked; from its own entry the restart works."""
    container, standin = gateway
    keys = {t: make_key(container, "user", t, **NO_LIMIT) for t in (OWNER, "tenant-sdk-b")}
    started = {
        t: client("start")
        .post("/v1/conversations", json={"model": MODEL, "inputs": "hi"}, headers=bearer(k))
        .get_json()["conversation_id"]
        for t, k in keys.items()
    }
    theirs = _entry(container, started[OWNER])
    mine = started["tenant-sdk-b"]
    calls = standin.calls()
    answers = [
        client("start").post(
            f"/v1/conversations/{mine}/restart",
            json={"inputs": "fork", "from_entry_id": entry},
            headers=bearer(keys["tenant-sdk-b"]),
        )
        for entry in (theirs, "msg_missing")
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert [error_code(a.get_json()) for a in answers] == ["not_found", "not_found"]
    assert standin.calls() == calls
    own = client("start").post(
        f"/v1/conversations/{mine}/restart",
        json={"inputs": "fork", "from_entry_id": _entry(container, mine)},
        headers=bearer(keys["tenant-sdk-b"]),
    )
    assert own.status_code == 200


def test_agent_and_conversation_changes_are_audited(
    gateway: tuple[Container, StandIn],
) -> None:
    """Each agent and conversation change through the admin function appends its row."""
    container, _ = gateway
    admin = make_key(container, "admin", OWNER, **NO_LIMIT)
    app = client("admin")
    agent = app.post("/v1/agents", json={"model": MODEL, "name": "a"}, headers=bearer(admin))
    one = f"/v1/agents/{agent.get_json()['id']}"
    steps = [
        app.patch(one, json={"instructions": "new"}, headers=bearer(admin)),
        app.patch(one + "/version?version=0", headers=bearer(admin)),
        app.put(one + "/aliases?alias=beta&version=0", headers=bearer(admin)),
        app.delete(one + "/aliases?alias=beta", headers=bearer(admin)),
        app.delete(one, headers=bearer(admin)),
    ]
    conversation = client("start").post(
        "/v1/conversations", json={"model": MODEL, "inputs": "hi"}, headers=bearer(admin)
    )
    conv = conversation.get_json()["conversation_id"]
    steps += [
        app.post(f"/gateway/v1/conversations/{conv}/archive", headers=bearer(admin)),
        app.post(f"/gateway/v1/conversations/{conv}/unarchive", headers=bearer(admin)),
        app.delete(f"/v1/conversations/{conv}", headers=bearer(admin)),
    ]
    assert all(s.status_code < 300 for s in steps), [s.status_code for s in steps]
    page = app.get("/gateway/v1/audit", headers=bearer(admin)).get_json()
    assert [e["action"] for e in reversed(page["data"])] == [
        "agent.create",
        "agent.update",
        "agent.version",
        "agent.alias.create",
        "agent.alias.delete",
        "agent.delete",
        "conversation.archive",
        "conversation.unarchive",
        "conversation.delete",
    ]
    assert {e["actor_key_id"] for e in page["data"]} == {admin.principal.key_id}

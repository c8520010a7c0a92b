"""A caller that leaves mid-stream (issue 16, findings 2 and 3): the turn is charged what
Mistral produced and stored as Mistral holds it, whoever left first."""

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
# The stand-in answers max_tokens words exactly, one token each, and counts a prompt's
# words as its prompt tokens: what it reports for this turn is known in advance.
MAX_TOKENS = 12_000
INPUTS = "tell me a very long story"


def _gateway(
    container: Container, base_settings: Settings, standin: StandIn, **changes: Any
) -> Container:
    settings = dataclasses.replace(
        base_settings, mistral_server_url=standin.url, breaker_failure_threshold=1000, **changes
    )
    return Container(settings, pool=container.pool, redis_client=container.redis)


@pytest.fixture
def gateway(container: Container, base_settings: Settings, standin: StandIn) -> Iterator[Container]:
    standin.reset()
    previous = set_container(_gateway(container, base_settings, standin))
    yield container
    set_container(previous)


@pytest.fixture
def key(gateway: Container) -> NewKey:
    # A day budget, so the turn reserves tokens and settles them.
    return make_key(gateway, "user", owner="tenant-a", token_budget_per_day=10**9)


def _leave_after(key: NewKey, size: int) -> str:
    """Start a long stream, read `size` bytes of it, leave; the conversation id."""
    answer = client("start").post(
        "/v1/conversations",
        headers=bearer(key),
        buffered=False,
        json={
            "inputs": INPUTS,
            "model": MODEL,
            "stream": True,
            "completion_args": {"max_tokens": MAX_TOKENS},
        },
    )
    received = b""
    for chunk in answer.response:
        received += chunk
        if len(received) >= size:
            break
    answer.close()
    assert b"conversation.response.done" not in received
    started = received.decode().split("data: ", 1)[1].split("\n", 1)[0]
    conversation_id: str = json.loads(started)["conversation_id"]
    return conversation_id


def _rows(container: Container, sql: str, **params: Any) -> list[dict[str, Any]]:
    with container.pool.connection() as conn:
        return conn.all(sql, **params)


def _upstream(standin: StandIn, conversation_id: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{standin.url}/v1/conversations/{conversation_id}/history",
        headers={"Authorization": "Bearer x"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
        entries: list[dict[str, Any]] = json.loads(reply.read())["entries"]
        return entries


def _stored(container: Container, conversation_id: str) -> list[dict[str, Any]]:
    return _rows(
        container,
        "SELECT body, status FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
        id=conversation_id,
    )


def _day_charge(container: Container) -> int:
    keys = container.redis.keys("gw:tok:d:tenant-a:*")
    assert len(keys) == 1
    return int(container.redis.get(keys[0]) or 0)


def test_a_stream_the_caller_left_is_charged_what_mistral_produced(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Left after 16 KB: the usage event and the budget hold the stand-in's whole usage."""
    conversation_id = _leave_after(key, 16_384)
    expected = {"prompt_tokens": len(INPUTS.split()), "completion_tokens": MAX_TOKENS}
    usage = _rows(
        gateway,
        "SELECT prompt_tokens, completion_tokens FROM usage_events WHERE conversation_id = :id",
        id=conversation_id,
    )
    assert usage == [expected]
    assert _day_charge(gateway) == sum(expected.values())


def test_a_stream_the_caller_left_is_stored_as_mistral_holds_it(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """The abandoned turn is stored whole, and so is the next turn: both equal Mistral's."""
    conversation_id = _leave_after(key, 16_384)
    stored = _stored(gateway, conversation_id)
    assert [r["body"] for r in stored] == _upstream(standin, conversation_id)
    assert {r["status"] for r in stored} == {"complete"}
    answer = client("start").post(
        f"/v1/conversations/{conversation_id}", json={"inputs": "go on"}, headers=bearer(key)
    )
    assert answer.status_code == 200
    stored = _stored(gateway, conversation_id)
    assert [r["body"] for r in stored] == _upstream(standin, conversation_id)
    assert len(stored) == 4


def test_an_entry_stored_incomplete_is_replaced_by_the_next_turn(
    container: Container, base_settings: Settings, standin: StandIn
) -> None:
    """Past its read bound the turn is stored incomplete and keeps its reservation; the next
    turn replaces the incomplete entry with Mistral's whole one instead of skipping its id."""
    standin.reset()
    previous = set_container(
        _gateway(container, base_settings, standin, abandoned_stream_read_bytes=1)
    )
    try:
        key = make_key(container, "user", owner="tenant-a", token_budget_per_day=10**9)
        conversation_id = _leave_after(key, 4_096)
        assert "incomplete" in {r["status"] for r in _stored(container, conversation_id)}
        # Mistral's usage is unknown: the reservation (at least max_tokens) stays spent.
        assert _day_charge(container) >= MAX_TOKENS
        answer = client("start").post(
            f"/v1/conversations/{conversation_id}", json={"inputs": "go on"}, headers=bearer(key)
        )
        assert answer.status_code == 200
    finally:
        set_container(previous)
    stored = _stored(container, conversation_id)
    assert [r["body"] for r in stored] == _upstream(standin, conversation_id)
    assert {r["status"] for r in stored} == {"complete"}

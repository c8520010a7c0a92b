"""The unchanged official SDK against the whole local stack, compared with the stand-in.

Each call is made twice with the same inputs: through the gateway (a gateway key,
the router's URL) and straight to the stand-in. The stand-in is deterministic, so
the parsed results must match apart from ids and timestamps; afterwards the
gateway's database must hold the conversation exactly as Mistral's history does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mistralai.client import Mistral

from devstack.stack import StackInfo
from shared.container import Container
from shared.keys import NewKey

MODEL = "mistral-small-latest"


@pytest.fixture(scope="module")
def gateway(stack: StackInfo, user_key: NewKey) -> Mistral:
    return Mistral(api_key=user_key.secret, server_url=stack.url)


@pytest.fixture(scope="module")
def direct(stack: StackInfo) -> Mistral:
    return Mistral(api_key="direct", server_url=stack.mistral_url)


def _shape(response: Any) -> list[tuple[str, Any]]:
    """What must match between gateway and stand-in: entry types and contents, usage."""
    return [(type(o).__name__, getattr(o, "content", None)) for o in response.outputs] + [
        ("usage", response.usage.total_tokens)
    ]


def _events(stream: Any) -> list[tuple[str, Any]]:
    return [
        (type(e.data).__name__, getattr(e.data, "content", None) or getattr(e.data, "usage", None))
        for e in stream
    ]


def _assert_stored(container: Container, direct: Mistral, conversation_id: str) -> None:
    """The database holds the conversation and every entry Mistral's history has."""
    upstream = direct.beta.conversations.get_history(conversation_id=conversation_id)
    with container.pool.connection() as conn:
        rows = conn.all(
            "SELECT id, type, prompt_tokens, completion_tokens FROM conversation_entries"
            " WHERE conversation_id = :id ORDER BY seq",
            id=conversation_id,
        )
        owner = conn.one("SELECT owner_id FROM conversations WHERE id = :id", id=conversation_id)
    assert owner == {"owner_id": "e2e-tenant"}
    assert [(r["id"], r["type"]) for r in rows] == [(e.id, e.type) for e in upstream.entries]
    assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) > 0


def test_start_append_restart_match_the_stand_in(
    gateway: Mistral, direct: Mistral, stack_container: Container
) -> None:
    """start, append and restart through the gateway equal the same calls made direct."""
    via = gateway.beta.conversations.start(model=MODEL, inputs="What is a gateway?")
    ref = direct.beta.conversations.start(model=MODEL, inputs="What is a gateway?")
    assert _shape(via) == _shape(ref)
    _assert_stored(stack_container, direct, via.conversation_id)

    via2 = gateway.beta.conversations.append(conversation_id=via.conversation_id, inputs="More")
    ref2 = direct.beta.conversations.append(conversation_id=ref.conversation_id, inputs="More")
    assert _shape(via2) == _shape(ref2)
    _assert_stored(stack_container, direct, via.conversation_id)

    via3 = gateway.beta.conversations.restart(
        conversation_id=via.conversation_id, from_entry_id=via.outputs[0].id, inputs="Again"
    )
    ref3 = direct.beta.conversations.restart(
        conversation_id=ref.conversation_id, from_entry_id=ref.outputs[0].id, inputs="Again"
    )
    assert _shape(via3) == _shape(ref3)
    assert via3.conversation_id != via.conversation_id
    _assert_stored(stack_container, direct, via3.conversation_id)


def test_streams_match_the_stand_in(
    gateway: Mistral, direct: Mistral, stack_container: Container
) -> None:
    """start_stream, append_stream and restart_stream relay the same typed events."""
    via = _events(gateway.beta.conversations.start_stream(model=MODEL, inputs="Stream it"))
    ref = _events(direct.beta.conversations.start_stream(model=MODEL, inputs="Stream it"))
    assert via[1:] == ref[1:]
    assert via[0][0] == "ResponseStartedEvent"
    assert via[-1][0] == "ResponseDoneEvent"

    start = gateway.beta.conversations.start(model=MODEL, inputs="base")
    cid = start.conversation_id
    appended = _events(gateway.beta.conversations.append_stream(conversation_id=cid, inputs="next"))
    assert appended[-1][0] == "ResponseDoneEvent"
    _assert_stored(stack_container, direct, cid)
    restarted = list(
        gateway.beta.conversations.restart_stream(
            conversation_id=cid, from_entry_id=start.outputs[0].id, inputs="branch"
        )
    )
    new_id = restarted[0].data.conversation_id
    assert new_id != cid
    _assert_stored(stack_container, direct, new_id)


def test_async_twins_work_unchanged(gateway: Mistral, direct: Mistral) -> None:
    """start_async and start_stream_async through the gateway match the stand-in."""

    async def run(client: Mistral) -> tuple[Any, list[Any]]:
        response = await client.beta.conversations.start_async(model=MODEL, inputs="async")
        stream = await client.beta.conversations.start_stream_async(model=MODEL, inputs="async")
        events = [type(e.data).__name__ async for e in stream]
        appended = await client.beta.conversations.append_async(
            conversation_id=response.conversation_id, inputs="and then"
        )
        return _shape(response) + _shape(appended), events

    assert asyncio.run(run(gateway)) == asyncio.run(run(direct))


def test_reads_through_the_sdk_match_the_stand_in(gateway: Mistral, direct: Mistral) -> None:
    """get, get_history and get_messages answered from the database equal Mistral's."""
    start = gateway.beta.conversations.start(model=MODEL, inputs="read me back")
    cid = start.conversation_id
    via_history = gateway.beta.conversations.get_history(conversation_id=cid)
    ref_history = direct.beta.conversations.get_history(conversation_id=cid)
    assert via_history.entries == ref_history.entries
    via_messages = gateway.beta.conversations.get_messages(conversation_id=cid)
    ref_messages = direct.beta.conversations.get_messages(conversation_id=cid)
    assert via_messages.messages == ref_messages.messages
    record = gateway.beta.conversations.get(conversation_id=cid)
    assert record.id == cid
    assert getattr(record, "model", None) == MODEL
    listed = gateway.beta.conversations.list(page=0, page_size=100)
    assert cid in [c.id for c in listed]

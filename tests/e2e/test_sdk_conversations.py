"""The unchanged official SDK against the whole local stack, compared with the stand-in.

Each call is made twice with the same inputs: through the gateway (a gateway key,
the router's URL) and straight to the stand-in. The stand-in is deterministic, so
the parsed results must match apart from ids and timestamps; afterwards the
gateway's database must hold the conversation exactly as Mistral's history does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mistralai.client import Mistral, errors

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key
from tests.support import error_code

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


# -- field by field, errors included --------------------------------------------------------


def _normal(value: Any, ids: dict[str, str]) -> Any:
    """SDK results (or error bodies) as plain data: ids numbered in order of appearance,
    timestamps and request ids masked, so two runs of one scenario compare field by field."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [_normal(v, ids) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in ("created_at", "updated_at", "completed_at"):
                out[key] = "<time>" if item else item
            elif key == "request_id":
                continue
            elif isinstance(item, str) and key.endswith("id"):
                out[key] = ids.setdefault(item, f"<id {len(ids)}>")
            else:
                out[key] = _normal(item, ids)
        return out
    if isinstance(value, str):
        # An id inside a message ("Conversation 'conv_...' not found").
        for real, alias in ids.items():
            value = value.replace(real, alias)
    return value


def _refusal(call: Any, ids: dict[str, str]) -> tuple[int, Any]:
    """The status and normalised JSON body of an error the SDK raised."""
    with pytest.raises(errors.MistralError) as raised:
        call()
    body = json.loads(raised.value.body)
    if raised.value.status_code == 422:
        # What the SDK parses of a 422 (HTTPValidationError): the gateway's body adds
        # Mistral's error fields around it, and pydantic's `input` echo is not compared.
        body = {"detail": [{k: d[k] for k in ("loc", "msg", "type")} for d in body["detail"]]}
    return raised.value.status_code, _normal(body, ids)


def _every_turn_and_read(sdk: Mistral, run: str) -> list[Any]:
    """start, append, restart, get, list, history, messages and delete, as plain data."""
    ids: dict[str, str] = {run: "<run>"}
    talk = sdk.beta.conversations
    seen: list[Any] = []
    started = talk.start(model=MODEL, inputs="field by field", metadata={"run": run})
    cid = started.conversation_id
    seen.append(_normal(started, ids))
    seen.append(_normal(talk.append(conversation_id=cid, inputs="and more"), ids))
    restarted = talk.restart(conversation_id=cid, from_entry_id=started.outputs[0].id, inputs="b")
    seen.append(_normal(restarted, ids))
    seen.append(_normal(talk.get(conversation_id=cid), ids))
    listed = talk.list(page=0, page_size=100, metadata={"run": run})
    seen.append(_normal(sorted(listed, key=lambda c: c.id != cid), ids))
    seen.append(_normal(talk.get_history(conversation_id=cid), ids))
    seen.append(_normal(talk.get_messages(conversation_id=cid), ids))
    talk.delete(conversation_id=restarted.conversation_id)
    seen.append(_refusal(lambda: talk.get(conversation_id=restarted.conversation_id), ids))
    return seen


def test_every_conversation_call_matches_the_stand_in_field_by_field(
    stack: StackInfo, direct: Mistral
) -> None:
    """Each conversation operation's parsed answer equals the stand-in's, field by field,
    ids and timestamps aside (a deleted conversation's 404 body included)."""
    admin = Mistral(api_key=stack.admin_key, server_url=stack.url)
    # Each run its own metadata: both runs' conversations are on the one stand-in.
    got, expected = (
        _every_turn_and_read(admin, "run-1f3a"),
        _every_turn_and_read(direct, "run-9c2e"),
    )
    assert len(got) == len(expected)
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"step {step}"


def _errors(sdk: Mistral, foreign: str, agent: str) -> list[tuple[int, Any]]:
    """The refusals a program meets: missing objects, another tenant's, an invalid field,
    a bad page token."""
    ids: dict[str, str] = {}
    talk, agents = sdk.beta.conversations, sdk.beta.agents
    missing = "conv_0000000000000000000000ff"
    return [
        _refusal(lambda: talk.get(conversation_id=missing), ids),
        _refusal(lambda: talk.get_history(conversation_id=missing), ids),
        _refusal(lambda: talk.get_messages(conversation_id=missing), ids),
        _refusal(lambda: talk.append(conversation_id=missing, inputs="x"), ids),
        _refusal(lambda: talk.restart(conversation_id=missing, from_entry_id="e", inputs="x"), ids),
        _refusal(lambda: talk.delete(conversation_id=missing), ids),
        # Another tenant's conversation is simply not there (the stand-in: an id never made).
        _refusal(lambda: talk.get(conversation_id=foreign), {foreign: "<id 0>"} | ids),
        _refusal(lambda: agents.get(agent_id="ag_0000000000000000000000ff"), ids),
        _refusal(lambda: agents.delete(agent_id="ag_0000000000000000000000ff"), ids),
        # Neither model nor agent: the SDK sends it, the server refuses it (422).
        _refusal(lambda: talk.start(inputs="nobody to talk to"), ids),
        _refusal(lambda: agents.list_pages(page_token="not-a-token"), ids),
        _refusal(
            lambda: talk.start(agent_id=agent, agent_version="no-such-alias", inputs="x"), ids
        ),
    ]


def test_errors_match_the_stand_in(
    gateway: Mistral, direct: Mistral, stack: StackInfo, stack_container: Container
) -> None:
    """Missing objects, another tenant's, an invalid field and a bad page token: the same
    status and, request id aside, the same error body as Mistral's (the stand-in's)."""
    with stack_container.pool.transaction() as conn:
        other = create_key(conn, owner_id="e2e-other", name="other", role="admin").secret
    theirs = Mistral(api_key=other, server_url=stack.url).beta.conversations.start(
        model=MODEL, inputs="mine only"
    )
    admin = Mistral(api_key=stack.admin_key, server_url=stack.url)
    mine = admin.beta.agents.create(model=MODEL, name="conformance")
    reference = direct.beta.agents.create(model=MODEL, name="conformance")
    got = _errors(admin, theirs.conversation_id, mine.id)
    expected = _errors(direct, "conv_00000000000000000000000e", reference.id)
    assert [status for status, _ in got] == [status for status, _ in expected]
    for step, (mine_body, their_body) in enumerate(zip(got, expected, strict=True)):
        assert mine_body == their_body, f"step {step}"


def test_an_oversize_body_is_413_in_mistrals_error_shape(stack: StackInfo) -> None:
    """A request body over the gateway's limit is refused before Mistral, as an SDKError
    whose body is Mistral's error shape (the stand-in has no limit to compare with)."""
    sdk = Mistral(api_key=stack.admin_key, server_url=stack.url)
    with pytest.raises(errors.SDKError) as raised:
        sdk.beta.conversations.start(model=MODEL, inputs="x" * 2_000_000)
    assert raised.value.status_code == 413
    assert error_code(json.loads(raised.value.body)) == "payload_too_large"

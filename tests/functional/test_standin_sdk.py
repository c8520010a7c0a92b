"""The Mistral stand-in (devstack.standin), driven by the unchanged official SDK and plain HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral, errors, models
from mistralai.client.utils import BackoffStrategy, RetryConfig

from devstack.standin import OPERATIONS, StandIn, parse_fault
from tests.support import WEATHER_TOOL

MODEL = "mistral-small-latest"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean(standin: StandIn) -> None:
    standin.reset()


@pytest.fixture(scope="module")
def client(standin: StandIn) -> Mistral:
    return Mistral(api_key="test", server_url=standin.url)


@pytest.fixture(scope="module")
def http(standin: StandIn) -> Iterator[httpx2.Client]:
    with httpx2.Client(
        base_url=standin.url, headers={"Authorization": "Bearer test"}, timeout=5
    ) as session:
        yield session


def start_body(**extra: Any) -> dict[str, Any]:
    return {"inputs": "What is the weather like?", "model": MODEL, "stream": False, **extra}


def stored_conversations(http: httpx2.Client) -> list[dict[str, Any]]:
    answer = http.get("/v1/conversations")
    assert answer.status_code == 200
    return answer.json()


# -- conversations through the SDK ---------------------------------------------------------------


def test_start_returns_a_text_reply_with_consistent_usage(client: Mistral) -> None:
    """start answers one assistant message whose usage counts input and reply words."""
    response = client.beta.conversations.start(inputs="one two three four", model=MODEL)

    assert response.conversation_id.startswith("conv_")
    (output,) = response.outputs
    assert isinstance(output, models.MessageOutputEntry)
    assert output.id is not None
    assert output.id.startswith("msg_")
    assert output.model == MODEL
    assert isinstance(output.content, str)
    assert output.content.startswith("Stand-in reply:")
    assert output.created_at is not None
    assert output.created_at.utcoffset() is not None
    assert output.created_at.utcoffset().total_seconds() == 0
    usage = response.usage
    assert usage.prompt_tokens == 4
    assert usage.completion_tokens == len(output.content.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_same_input_gives_the_same_reply(client: Mistral) -> None:
    """Replies are deterministic: equal inputs, equal text; other inputs, other text."""

    def reply(text: str) -> Any:
        return client.beta.conversations.start(inputs=text, model=MODEL).outputs[0].content

    assert reply("same words") == reply("same words")
    assert reply("same words") != reply("other words")


def test_max_tokens_fixes_the_reply_word_count(client: Mistral) -> None:
    """completion_args.max_tokens gives exactly that many reply words."""
    response = client.beta.conversations.start(
        inputs="hello", model=MODEL, completion_args={"max_tokens": 7}
    )
    content = response.outputs[0].content
    assert isinstance(content, str)
    assert len(content.split()) == 7
    assert response.usage.completion_tokens == 7


def test_start_stream_yields_typed_events_one_delta_per_word(client: Mistral) -> None:
    """start_stream: started, one typed message delta per word, done; history has the turn."""
    with client.beta.conversations.start_stream(
        inputs="stream me", model=MODEL, completion_args={"max_tokens": 5}
    ) as stream:
        events = [event.data for event in stream]

    assert [type(e) for e in events] == [
        models.ResponseStartedEvent,
        *[models.MessageOutputEvent] * 5,
        models.ResponseDoneEvent,
    ]
    started, *deltas, done = events
    assert isinstance(started, models.ResponseStartedEvent)
    assert isinstance(done, models.ResponseDoneEvent)
    assert len({d.id for d in deltas}) == 1
    assert all(d.output_index == 0 and d.content_index == 0 for d in deltas)
    assert all(d.model == MODEL and d.role == "assistant" for d in deltas)
    assert done.usage.completion_tokens == 5
    text = "".join(str(d.content) for d in deltas)

    history = client.beta.conversations.get_history(conversation_id=started.conversation_id)
    stored = history.entries[-1]
    assert isinstance(stored, models.MessageOutputEntry)
    assert (stored.id, stored.content) == (deltas[0].id, text)


def test_stream_and_plain_turns_store_the_same_history(client: Mistral) -> None:
    """A streamed turn leaves the same history as the same turn asked without streaming."""
    plain = client.beta.conversations.start(inputs="same turn", model=MODEL)
    with client.beta.conversations.start_stream(inputs="same turn", model=MODEL) as stream:
        streamed_id = next(iter(stream)).data.conversation_id
        list(stream)

    def shape(conversation_id: str) -> list[tuple[str, Any]]:
        entries = client.beta.conversations.get_history(conversation_id=conversation_id).entries
        return [(e.type, getattr(e, "content", None)) for e in entries]

    assert shape(plain.conversation_id) == shape(streamed_id)


def test_append_history_messages_and_get_agree(client: Mistral) -> None:
    """append and append_stream add turns; history, messages and get reflect exactly them."""
    first = client.beta.conversations.start(
        inputs="first", model=MODEL, name="chat", description="d", metadata={"team": "a"}
    )
    conversation_id = first.conversation_id
    second = client.beta.conversations.append(conversation_id=conversation_id, inputs="second")
    with client.beta.conversations.append_stream(
        conversation_id=conversation_id, inputs="third", completion_args={"max_tokens": 3}
    ) as stream:
        events = list(stream)
    assert isinstance(events[0].data, models.ResponseStartedEvent)
    assert events[0].data.conversation_id == conversation_id

    history = client.beta.conversations.get_history(conversation_id=conversation_id)
    assert [e.type for e in history.entries] == ["message.input", "message.output"] * 3
    assert [e.content for e in history.entries[::2]] == ["first", "second", "third"]
    assert all(e.id and e.created_at for e in history.entries)
    assert history.entries[1] == first.outputs[0]
    assert history.entries[3] == second.outputs[0]

    messages = client.beta.conversations.get_messages(conversation_id=conversation_id)
    assert messages.messages == history.entries

    record = client.beta.conversations.get(conversation_id=conversation_id)
    assert isinstance(record, models.ModelConversation)
    assert (record.id, record.model, record.name) == (conversation_id, MODEL, "chat")
    assert (record.description, record.metadata) == ("d", {"team": "a"})
    assert record.updated_at >= record.created_at


def test_restart_branches_into_a_new_conversation(client: Mistral) -> None:
    """restart keeps history up to from_entry_id plus the new turn, under a new id."""
    first = client.beta.conversations.start(inputs="first", model=MODEL)
    conversation_id = first.conversation_id
    client.beta.conversations.append(conversation_id=conversation_id, inputs="second")
    branch_from = first.outputs[0].id
    assert branch_from is not None

    restarted = client.beta.conversations.restart(
        conversation_id=conversation_id, from_entry_id=branch_from, inputs="other second"
    )
    assert restarted.conversation_id not in (conversation_id, "")
    entries = client.beta.conversations.get_history(
        conversation_id=restarted.conversation_id
    ).entries
    assert [e.content for e in entries[:3]] == ["first", first.outputs[0].content, "other second"]
    assert entries[3] == restarted.outputs[0]
    original = client.beta.conversations.get_history(conversation_id=conversation_id)
    assert len(original.entries) == 4

    with client.beta.conversations.restart_stream(
        conversation_id=conversation_id, from_entry_id=branch_from, inputs="third way"
    ) as stream:
        events = [event.data for event in stream]
    assert isinstance(events[0], models.ResponseStartedEvent)
    assert events[0].conversation_id not in (conversation_id, restarted.conversation_id)
    assert isinstance(events[-1], models.ResponseDoneEvent)


def test_list_works_without_metadata_and_filters_with_it(client: Mistral) -> None:
    """list ignores the SDK's unset-metadata sentinel, filters on a metadata object, pages."""
    for team in ("a", "b", "a"):
        client.beta.conversations.start(inputs="x", model=MODEL, metadata={"team": team})

    everything = client.beta.conversations.list()
    assert len(everything) == 3
    assert all(isinstance(c, models.ModelConversation) for c in everything)
    assert len(client.beta.conversations.list(metadata={"team": "a"})) == 2
    assert len(client.beta.conversations.list(page=1, page_size=2)) == 1


def test_delete_conversation_answers_204_then_404(client: Mistral) -> None:
    """delete succeeds (204) and the conversation is gone afterwards."""
    conversation_id = client.beta.conversations.start(inputs="x", model=MODEL).conversation_id
    assert client.beta.conversations.delete(conversation_id=conversation_id) is None
    with pytest.raises(errors.SDKError) as raised:
        client.beta.conversations.get(conversation_id=conversation_id)
    assert raised.value.status_code == 404


def test_async_start_and_start_stream(client: Mistral) -> None:
    """The async twins parse the same answers."""

    async def run() -> tuple[models.ConversationResponse, list[Any]]:
        response = await client.beta.conversations.start_async(inputs="async", model=MODEL)
        stream = await client.beta.conversations.start_stream_async(
            inputs="async stream", model=MODEL, completion_args={"max_tokens": 2}
        )
        return response, [event.data async for event in stream]

    response, events = asyncio.run(run())
    assert isinstance(response.outputs[0], models.MessageOutputEntry)
    assert [type(e) for e in events] == [
        models.ResponseStartedEvent,
        models.MessageOutputEvent,
        models.MessageOutputEvent,
        models.ResponseDoneEvent,
    ]


def test_start_without_model_or_agent_is_a_typed_422(client: Mistral) -> None:
    """start with neither model nor agent_id raises HTTPValidationError with a detail list."""
    with pytest.raises(errors.HTTPValidationError) as raised:
        client.beta.conversations.start(inputs="x")
    assert raised.value.data.detail is not None
    assert raised.value.data.detail[0].loc == ["body"]


# -- tool calls ----------------------------------------------------------------------------------


def test_agent_function_tool_call_then_result(client: Mistral) -> None:
    """An agent with a function tool calls it; a function.result turn gets a text answer."""
    agent = client.beta.agents.create(model=MODEL, name="weather", tools=[WEATHER_TOOL])
    response = client.beta.conversations.start(agent_id=agent.id, inputs="Weather in Paris?")
    (call,) = response.outputs
    assert isinstance(call, models.FunctionCallEntry)
    assert call.tool_call_id.startswith("call_")
    assert call.name == "get_weather"
    assert call.agent_id == agent.id
    assert isinstance(call.arguments, str)
    assert json.loads(call.arguments) == {"query": "Weather in Paris?"}

    answer = client.beta.conversations.append(
        conversation_id=response.conversation_id,
        inputs=[{"type": "function.result", "tool_call_id": call.tool_call_id, "result": "sunny"}],
    )
    (text,) = answer.outputs
    assert isinstance(text, models.MessageOutputEntry)
    assert "sunny" in str(text.content)

    history = client.beta.conversations.get_history(conversation_id=response.conversation_id)
    assert [e.type for e in history.entries] == [
        "message.input",
        "function.call",
        "function.result",
        "message.output",
    ]
    record = client.beta.conversations.get(conversation_id=response.conversation_id)
    assert isinstance(record, models.AgentConversation)
    assert (record.agent_id, record.agent_version) == (agent.id, 0)


def test_model_conversation_streams_function_call_deltas(client: Mistral) -> None:
    """A model conversation with function tools streams typed function.call deltas."""
    with client.beta.conversations.start_stream(
        model=MODEL, tools=[WEATHER_TOOL], inputs="Weather in Lyon?"
    ) as stream:
        events = [event.data for event in stream]
    deltas = events[1:-1]
    assert deltas
    assert all(isinstance(d, models.FunctionCallEvent) for d in deltas)
    assert len({(d.id, d.name, d.tool_call_id) for d in deltas}) == 1
    assert json.loads("".join(d.arguments for d in deltas)) == {"query": "Weather in Lyon?"}


# -- agents through the SDK ----------------------------------------------------------------------


def test_agent_versions_and_aliases_lifecycle(client: Mistral) -> None:
    """create, update, get by version and alias, update_version, versions, aliases, delete."""
    agents = client.beta.agents
    created = agents.create(model=MODEL, name="v0", instructions="be brief", metadata={"k": 1})
    assert created.id.startswith("ag_")
    assert (created.version, created.versions, created.source) == (0, [0], "api")
    assert created.deployment_chat is False

    updated = agents.update(agent_id=created.id, name="v1", deployment_chat=True)
    assert (updated.version, updated.versions, updated.name) == (1, [0, 1], "v1")
    assert updated.instructions == "be brief"
    assert agents.get(agent_id=created.id).name == "v1"
    assert agents.get(agent_id=created.id, agent_version=0).name == "v0"

    alias = agents.create_version_alias(agent_id=created.id, alias="stable", version=0)
    assert isinstance(alias, models.AgentAliasResponse)
    assert (alias.alias, alias.version) == ("stable", 0)
    assert agents.get(agent_id=created.id, agent_version="stable").version == 0
    assert [a.alias for a in agents.list_version_aliases(agent_id=created.id)] == ["stable"]
    assert agents.delete_version_alias(agent_id=created.id, alias="stable") is None
    assert agents.list_version_aliases(agent_id=created.id) == []

    assert agents.get_version(agent_id=created.id, version="0").name == "v0"
    assert [a.version for a in agents.list_versions(agent_id=created.id)] == [1, 0]
    rolled_back = agents.update_version(agent_id=created.id, version=0)
    assert (rolled_back.version, rolled_back.name) == (0, "v0")
    assert agents.get(agent_id=created.id).version == 0

    assert agents.delete(agent_id=created.id) is None
    with pytest.raises(errors.SDKError) as raised:
        agents.get(agent_id=created.id)
    assert raised.value.status_code == 404


@pytest.mark.filterwarnings("ignore:.*DEPRECATED.*:DeprecationWarning")  # agents.list is deprecated
def test_agents_list_and_list_pages_with_next(client: Mistral) -> None:
    """list pages by page number; list_pages follows next_page_token until the end."""
    ids = [client.beta.agents.create(model=MODEL, name=f"agent-{i}").id for i in range(5)]

    listed = client.beta.agents.list(page_size=10)
    assert [a.id for a in listed] == ids[::-1]
    assert len(client.beta.agents.list(page=1, page_size=2)) == 2
    assert [a.id for a in client.beta.agents.list(name="agent-3")] == [ids[3]]

    page = client.beta.agents.list_pages(page_size=2)
    seen = []
    while page is not None:
        assert isinstance(page.result, models.AgentListPage)
        seen.extend(a.id for a in page.result.data)
        page = page.next()
    assert seen == ids[::-1]


# -- models through the SDK ----------------------------------------------------------------------


def test_models_list_and_retrieve_parse_as_the_sdks_cards(client: Mistral) -> None:
    """models.list parses to base and fine-tuned cards; each retrieves as listed; unknown: 404."""
    listed = client.models.list().data or []
    assert {type(card).__name__ for card in listed} == {"BaseModelCard", "FTModelCard"}
    assert MODEL in [card.id for card in listed]
    for card in listed:
        assert client.models.retrieve(model_id=card.id) == card
    with pytest.raises(errors.SDKError) as missing:
        client.models.retrieve(model_id="no-such-model")
    assert missing.value.status_code == 404


# -- plain HTTP: malformed requests --------------------------------------------------------------


def test_malformed_json_is_a_400_error_object(http: httpx2.Client) -> None:
    """A body that is not JSON answers 400 with Mistral's error object."""
    answer = http.post(
        "/v1/conversations", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert (body["object"], body["type"], body["param"]) == ("error", "invalid_request_error", None)
    assert body["message"]
    assert body["code"]


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/conversations", {"model": MODEL}, ["body", "inputs"]),
        ("/v1/conversations", {"inputs": 5, "model": MODEL}, ["body", "inputs"]),
        ("/v1/conversations", {"inputs": "x", "model": MODEL, "agent_id": "ag_1"}, ["body"]),
        ("/v1/conversations", [1, 2], ["body"]),
        ("/v1/conversations", start_body(stream="yes"), ["body", "stream"]),
        (
            "/v1/conversations",
            start_body(inputs=[{"type": "message.input", "role": "user"}]),
            ["body", "inputs", 0, "content"],
        ),
        ("/v1/agents", {"name": "no model"}, ["body", "model"]),
    ],
)
def test_wrong_fields_are_422_in_the_list_form(
    http: httpx2.Client, path: str, body: Any, loc: list[Any]
) -> None:
    """Wrong or missing fields answer 422 with a detail list of loc/msg/type."""
    answer = http.post(path, json=body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, list)
    assert loc in [item["loc"] for item in detail]
    assert all(isinstance(item["msg"], str) and isinstance(item["type"], str) for item in detail)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/conversations/conv_missing", None),
        ("GET", "/v1/conversations/conv_missing/history", None),
        ("DELETE", "/v1/conversations/conv_missing", None),
        ("POST", "/v1/conversations/conv_missing", {"inputs": "x"}),
        ("POST", "/v1/conversations/conv_missing/restart", {"from_entry_id": "msg_1"}),
        ("GET", "/v1/agents/ag_missing", None),
        ("POST", "/v1/conversations", {"inputs": "x", "agent_id": "ag_missing"}),
    ],
)
def test_unknown_ids_are_404(
    http: httpx2.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """Unknown conversations and agents answer a 404 JSON error, appends and restarts too."""
    answer = http.request(method, path, json=body)
    assert answer.status_code == 404
    assert answer.json()["object"] == "error"


def test_authorization_is_required(standin: StandIn) -> None:
    """No or empty bearer token is a 401; with api_key only that exact key is accepted."""
    assert httpx2.get(standin.url + "/v1/conversations").status_code == 401
    for header in ("Bearer", "Basic dGVzdA=="):
        refused = httpx2.get(standin.url + "/v1/conversations", headers={"Authorization": header})
        assert refused.status_code == 401
        assert refused.json()["object"] == "error"
    with StandIn(api_key="right") as locked:
        right = Mistral(api_key="right", server_url=locked.url)
        assert right.beta.conversations.list() == []
        with pytest.raises(errors.SDKError) as raised:
            Mistral(api_key="wrong", server_url=locked.url).beta.conversations.list()
        assert raised.value.status_code == 401


def test_unknown_fields_are_ignored_and_echo_field_round_trips(http: httpx2.Client) -> None:
    """Unknown request fields are ignored; x_standin_echo comes back in the answer."""
    echo = {"nested": [1, "two"]}
    answer = http.post("/v1/conversations", json=start_body(x_standin_echo=echo, surprise=1))
    assert answer.status_code == 200
    assert answer.json()["x_standin_echo"] == echo
    assert "surprise" not in answer.json()

    agent = http.post("/v1/agents", json={"model": MODEL, "name": "a", "x_standin_echo": echo})
    assert agent.json()["x_standin_echo"] == echo
    updated = http.patch(f"/v1/agents/{agent.json()['id']}", json={"x_standin_echo": "u"})
    assert updated.json()["x_standin_echo"] == "u"

    with http.stream(
        "POST", "/v1/conversations", json=start_body(stream=True, x_standin_echo=echo)
    ) as stream:
        first_data = next(line for line in stream.iter_lines() if line.startswith("data: "))
    assert json.loads(first_data.removeprefix("data: "))["x_standin_echo"] == echo


def test_stream_wire_format_is_sse_without_done_sentinel(http: httpx2.Client) -> None:
    """Streams are chunked text/event-stream frames with event and data lines, no [DONE]."""
    with http.stream("POST", "/v1/conversations", json=start_body(stream=True)) as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["transfer-encoding"] == "chunked"
        text = stream.read().decode()
    frames = [frame for frame in text.split("\n\n") if frame]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        name = event_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
    assert "[DONE]" not in text


def test_store_false_answers_without_keeping_anything(http: httpx2.Client) -> None:
    """store:false still answers but the conversation is not kept."""
    answer = http.post("/v1/conversations", json=start_body(store=False))
    assert answer.status_code == 200
    assert stored_conversations(http) == []


def test_chunked_request_bodies_are_read(http: httpx2.Client) -> None:
    """A chunked request body (as a streaming proxy may send) is accepted."""
    payload = json.dumps(start_body()).encode()
    answer = http.post("/v1/conversations", content=iter([payload[:10], payload[10:]]))
    assert answer.status_code == 200


# -- faults --------------------------------------------------------------------------------------


def test_fault_429_carries_retry_after_headers(http: httpx2.Client) -> None:
    """status=429 answers a JSON error with Retry-After and, if asked, retry-after-ms."""
    answer = http.post(
        "/v1/conversations",
        json=start_body(),
        headers={"x-standin-fault": "status=429;retry_after=2;retry_after_ms=1500"},
    )
    assert answer.status_code == 429
    assert (answer.headers["retry-after"], answer.headers["retry-after-ms"]) == ("2", "1500")
    assert answer.json()["object"] == "error"
    plain = http.get("/v1/conversations", headers={"x-standin-fault": "status=429"})
    assert plain.headers["retry-after"] == "1"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_fault_5xx_answers_json_error_and_stores_nothing(http: httpx2.Client, status: int) -> None:
    """status=5xx answers that status with a JSON error body and creates nothing."""
    answer = http.post(
        "/v1/conversations", json=start_body(), headers={"x-standin-fault": f"status={status}"}
    )
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["object"] == "error"
    assert stored_conversations(http) == []


def test_sdk_retry_honours_retry_after_ms(standin: StandIn, client: Mistral) -> None:
    """An SDK RetryConfig retries an injected 429 after retry-after-ms and then succeeds."""
    standin.inject("status=429;retry_after_ms=20", count=1, operation="conversations.start")
    retries = RetryConfig("backoff", BackoffStrategy(5000, 5000, 1.0, 10_000), False)
    began = time.monotonic()
    response = client.beta.conversations.start(inputs="x", model=MODEL, retries=retries)
    assert time.monotonic() - began < 2
    assert response.conversation_id.startswith("conv_")
    assert standin.calls()["conversations.start"] == 2


def test_fault_reset_aborts_the_connection(http: httpx2.Client) -> None:
    """reset closes the connection with a TCP reset and no response; nothing is stored."""
    with pytest.raises(httpx2.ReadError):
        http.post("/v1/conversations", json=start_body(), headers={"x-standin-fault": "reset"})
    assert stored_conversations(http) == []


def test_fault_timeout_makes_the_client_time_out(client: Mistral, standin: StandIn) -> None:
    """timeout=MS holds the answer so a short client timeout fires; nothing is stored."""
    with pytest.raises(httpx2.ReadTimeout):
        client.beta.conversations.start(
            inputs="x",
            model=MODEL,
            timeout_ms=200,
            http_headers={"x-standin-fault": "timeout=3000"},
        )
    assert standin.calls()["conversations.start"] == 1
    assert client.beta.conversations.list() == []


def test_fault_latency_delays_the_answer(http: httpx2.Client) -> None:
    """latency=MS delays the answer by at least MS."""
    began = time.monotonic()
    answer = http.get("/v1/conversations", headers={"x-standin-fault": "latency=150"})
    assert answer.status_code == 200
    assert time.monotonic() - began >= 0.15


def test_fault_cut_drops_the_stream_and_keeps_no_turn(client: Mistral) -> None:
    """cut=K sends K events then drops the connection; the turn is not stored."""
    received = []
    stream = client.beta.conversations.start_stream(
        inputs="x", model=MODEL, http_headers={"x-standin-fault": "cut=3"}
    )
    with pytest.raises(httpx2.RemoteProtocolError):
        for event in stream:
            received.append(event.data)
    assert [type(e) for e in received] == [models.ResponseStartedEvent] + [
        models.MessageOutputEvent
    ] * 2
    started = received[0]
    assert isinstance(started, models.ResponseStartedEvent)
    with pytest.raises(errors.SDKError) as raised:
        client.beta.conversations.get(conversation_id=started.conversation_id)
    assert raised.value.status_code == 404


def test_fault_malformed_sends_invalid_json_on_200(client: Mistral, http: httpx2.Client) -> None:
    """malformed answers 200 application/json with a body that is not JSON."""
    answer = http.post(
        "/v1/conversations", json=start_body(), headers={"x-standin-fault": "malformed"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    with pytest.raises(errors.ResponseValidationError):
        client.beta.conversations.start(
            inputs="x", model=MODEL, http_headers={"x-standin-fault": "malformed"}
        )


def test_fault_unknown_entry_adds_an_unknown_output_type(
    client: Mistral, http: httpx2.Client
) -> None:
    """unknown_entry adds a message.thinking entry (stream: an unknown event) to a valid answer."""
    answer = http.post(
        "/v1/conversations", json=start_body(), headers={"x-standin-fault": "unknown_entry"}
    )
    assert [o["type"] for o in answer.json()["outputs"]] == ["message.output", "message.thinking"]
    with pytest.raises(errors.ResponseValidationError):
        client.beta.conversations.start(
            inputs="x", model=MODEL, http_headers={"x-standin-fault": "unknown_entry"}
        )
    with client.beta.conversations.start_stream(
        inputs="x", model=MODEL, http_headers={"x-standin-fault": "unknown_entry"}
    ) as stream:
        events = [event.data for event in stream]
    assert isinstance(events[-2], models.UnknownConversationEventsData)
    assert isinstance(events[-1], models.ResponseDoneEvent)


def test_after_faults_fail_the_client_but_keep_the_conversation(http: httpx2.Client) -> None:
    """status_after and reset_after fail the answer after the conversation was created."""
    failed = http.post(
        "/v1/conversations", json=start_body(), headers={"x-standin-fault": "status_after=503"}
    )
    assert failed.status_code == 503
    with pytest.raises(httpx2.ReadError):
        http.post(
            "/v1/conversations", json=start_body(), headers={"x-standin-fault": "reset_after"}
        )
    assert len(stored_conversations(http)) == 2


# -- control API ---------------------------------------------------------------------------------


def test_control_api_queues_faults_per_operation(http: httpx2.Client) -> None:
    """POST /_standin/faults hits the next N matching requests only; DELETE clears the queue."""
    queued = http.post(
        "/_standin/faults",
        json={"fault": "status=502", "count": 2, "operation": "conversations.start"},
    )
    assert queued.status_code == 200
    assert http.get("/v1/conversations").status_code == 200  # another operation: untouched
    assert [http.post("/v1/conversations", json=start_body()).status_code for _ in range(3)] == [
        502,
        502,
        200,
    ]

    http.post("/_standin/faults", json={"fault": "status=500", "count": 5})
    assert http.get("/_standin/faults").json()["queued"][0]["count"] == 5
    assert http.delete("/_standin/faults").json() == {"cleared": 1}
    assert http.get("/v1/conversations").status_code == 200
    assert http.post("/_standin/faults", json={"fault": "explode"}).status_code == 400
    bad_operation = {"fault": "reset", "operation": "conversations.nope"}
    assert http.post("/_standin/faults", json=bad_operation).status_code == 400


def test_calls_count_every_api_request_and_reset_clears(
    standin: StandIn, http: httpx2.Client
) -> None:
    """/_standin/calls counts API requests (faulted ones too); /_standin/reset clears all."""
    http.post("/v1/conversations", json=start_body())
    http.post("/v1/conversations", json=start_body(), headers={"x-standin-fault": "status=503"})
    http.get("/v1/agents/pages")
    http.get("/_standin/health")

    calls = http.get("/_standin/calls").json()
    assert set(calls) == set(OPERATIONS)
    assert calls["conversations.start"] == 2
    assert calls["agents.list_pages"] == 1
    assert sum(calls.values()) == 3
    assert standin.calls() == calls

    assert http.post("/_standin/reset").status_code == 200
    assert sum(http.get("/_standin/calls").json().values()) == 0
    assert stored_conversations(http) == []
    assert http.get("/_standin/health").json() == {"status": "ok"}


def test_default_fault_and_run_latency_apply_to_every_request() -> None:
    """A run's default fault and latency apply to API requests that name no other fault."""
    with StandIn(latency_ms=100, default_fault="status=500") as server:
        client = Mistral(api_key="test", server_url=server.url)
        began = time.monotonic()
        with pytest.raises(errors.SDKError) as raised:
            client.beta.conversations.list()
        assert raised.value.status_code == 500
        assert time.monotonic() - began >= 0.1
        ok = client.beta.conversations.list(http_headers={"x-standin-fault": "latency=0"})
        assert ok == []


@pytest.mark.parametrize(
    "spec",
    ["status=200", "status", "reset=1", "cut", "latency=-1", "retry_after=1", "reset;timeout", "x"],
)
def test_parse_fault_rejects_bad_specs(spec: str) -> None:
    """Bad fault specs are refused with a ValueError."""
    with pytest.raises(ValueError, match="fault|action|retry_after"):
        parse_fault(spec)


def test_cli_serves_until_sigterm() -> None:
    """python -m devstack.standin prints its URL, serves, and exits cleanly on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.standin", "--port", "0", "--latency-ms", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("standin listening on http://127.0.0.1:")
        url = line.removeprefix("standin listening on ")
        assert httpx2.get(url + "/_standin/health").json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/libraries", {"name": "l", "chunk_size": {}}, "chunk_size"),
        ("/v1/batch/jobs", {"endpoint": "/v1/chat/completions", "agent_id": {}}, "agent_id"),
    ],
)
def test_an_object_where_mistral_takes_a_scalar_or_null_is_422(
    http: httpx2.Client, path: str, body: dict[str, Any], field: str
) -> None:
    """The SDK's optional fields also take its empty `Unset` model, so `{}` validates
    there as "not given"; Mistral's server refuses it, and so does the stand-in, which
    must not store and answer an object where the SDK's answer models expect a scalar."""
    answer = http.post(path, json={"input_files": [], **body})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", field]
    fine = http.post(path, json={"input_files": [], **body, field: None})
    assert fine.status_code in (200, 201)


def test_a_library_answers_its_fields_as_mistral_reads_them(http: httpx2.Client) -> None:
    """Values are stored as the request model reads them (`false` for an integer is 0),
    not as sent, and fields the model does not know are dropped."""
    made = http.post("/v1/libraries", json={"name": "l", "chunk_size": False, "unknown": 1})
    assert made.status_code == 201
    assert made.json()["chunk_size"] == 0
    assert "unknown" not in made.json()

"""The unchanged SDK reads the same conversations from the history function as from Mistral.

Conversations are made on the Mistral stand-in; the database is seeded with
exactly what the stand-in answers (its records as rows, its `/history` bodies
as entries, the way the start function stores them); then the SDK's `list`,
`get`, `get_history` and `get_messages` against the history function, served
over real HTTP, must parse to what the same calls parse from the stand-in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral, errors
from werkzeug.serving import make_server

from devstack.standin import StandIn
from shared.container import Container
from shared.db import Conn
from tests.support import WEATHER_TOOL, function_app, make_key

MODEL = "mistral-small-latest"
OWNER = "tenant-sdk"


@pytest.fixture(scope="module")
def history_url() -> Iterator[str]:
    """The history function's real Flask app on a threaded HTTP server."""
    server = make_server("127.0.0.1", 0, function_app("history"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def _pause() -> None:
    # The stand-in stamps milliseconds; distinct stamps make "newest first" one order.
    time.sleep(0.003)


def make_conversations(mistral: Mistral) -> None:
    """Conversations of every kind the SDK can make: model and agent, tools, a restart."""
    conversations = mistral.beta.conversations
    first = conversations.start(
        inputs="first question",
        model=MODEL,
        name="chat",
        description="a model conversation",
        metadata={"team": "a", "env": "prod"},
        instructions="be brief",
        completion_args={"temperature": 0.3, "max_tokens": 12},
    )
    conversations.append(conversation_id=first.conversation_id, inputs="second question")
    _pause()

    agent = mistral.beta.agents.create(model=MODEL, name="weather", tools=[WEATHER_TOOL])
    called = conversations.start(
        agent_id=agent.id, inputs="Weather in Paris?", metadata={"team": "b"}
    )
    call = called.outputs[0]
    conversations.append(
        conversation_id=called.conversation_id,
        inputs=[{"type": "function.result", "tool_call_id": call.tool_call_id, "result": "sunny"}],
    )
    _pause()

    conversations.start(
        inputs=[{"role": "user", "content": [{"type": "text", "text": "chunked input"}]}],
        model=MODEL,
        tools=[WEATHER_TOOL, {"type": "web_search"}],
        metadata={"team": "a"},
    )
    _pause()

    branch_from = first.outputs[0].id
    assert branch_from is not None
    conversations.restart(
        conversation_id=first.conversation_id, from_entry_id=branch_from, inputs="other"
    )


def _jsonb(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def seed_from_standin(conn: Conn, standin: StandIn) -> list[str]:
    """Store what the stand-in answers, as the start function does; return the ids."""
    with httpx2.Client(base_url=standin.url, headers={"Authorization": "Bearer x"}) as http:
        records = http.get("/v1/conversations", params={"page_size": 1000}).json()
        histories = {
            r["id"]: http.get(f"/v1/conversations/{r['id']}/history").json()["entries"]
            for r in records
        }
    for agent_id in {r["agent_id"] for r in records if "agent_id" in r}:
        conn.run(
            "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
            " VALUES (:id, :owner, :id, :model, '{}', now(), now())",
            id=agent_id,
            owner=OWNER,
            model=MODEL,
        )
    for record in records:
        version = record.get("agent_version")
        conn.run(
            """
            INSERT INTO conversations (
                id, owner_id, agent_id, agent_version, model, name, description, metadata,
                instructions, tools, completion_args, guardrails, created_at, updated_at)
            VALUES (
                :id, :owner, :agent_id, :agent_version, :model, :name, :description,
                CAST(:metadata AS jsonb), :instructions, CAST(:tools AS jsonb),
                CAST(:completion_args AS jsonb), CAST(:guardrails AS jsonb),
                CAST(:created_at AS timestamptz), CAST(:updated_at AS timestamptz))
            """,
            id=record["id"],
            owner=OWNER,
            agent_id=record.get("agent_id"),
            agent_version=None if version is None else str(version),
            model=record.get("model"),
            name=record["name"],
            description=record["description"],
            metadata=_jsonb(record["metadata"]),
            instructions=record.get("instructions"),
            tools=_jsonb(record.get("tools")),
            completion_args=_jsonb(record.get("completion_args")),
            guardrails=_jsonb(record.get("guardrails")),
            created_at=record["created_at"],
            updated_at=record["updated_at"],
        )
        for seq, entry in enumerate(histories[record["id"]]):
            conn.run(
                "INSERT INTO conversation_entries"
                " (conversation_id, seq, id, owner_id, type, body, created_at)"
                " VALUES (:cid, :seq, :id, :owner, :type, CAST(:body AS jsonb),"
                " CAST(:created_at AS timestamptz))",
                cid=record["id"],
                seq=seq,
                id=entry["id"],
                owner=OWNER,
                type=entry["type"],
                body=json.dumps(entry),
                created_at=entry["created_at"],
            )
    return [r["id"] for r in records]


@pytest.fixture
def seeded(container: Container, standin: StandIn) -> tuple[Mistral, list[str]]:
    """The stand-in's client, after making conversations there and copying them to the DB."""
    mistral = Mistral(api_key="test", server_url=standin.url)
    make_conversations(mistral)
    with container.pool.transaction() as conn:
        ids = seed_from_standin(conn, standin)
    assert len(ids) == 4
    return mistral, ids


@pytest.fixture
def gateway(container: Container, history_url: str) -> Mistral:
    """The unchanged SDK pointed at the history function with a gateway key."""
    key = make_key(container, "read_only", OWNER, rate_limit_requests=10_000)
    return Mistral(api_key=key.secret, server_url=history_url)


def _reads(client: Mistral, ids: list[str]) -> dict[str, Any]:
    """What every read call of the SDK parses, keyed by the call."""
    conversations = client.beta.conversations
    answers: dict[str, Any] = {
        "list()": conversations.list(),
        "list(page=1, page_size=3)": conversations.list(page=1, page_size=3),
        "list(page=0, page_size=2)": conversations.list(page=0, page_size=2),
        "list(metadata=team a)": conversations.list(metadata={"team": "a"}),
        "list(metadata=team b)": conversations.list(metadata={"team": "b"}),
        "list(metadata=none match)": conversations.list(metadata={"team": "z"}),
    }
    for conversation_id in ids:
        answers[f"get({conversation_id})"] = conversations.get(conversation_id=conversation_id)
        answers[f"get_history({conversation_id})"] = conversations.get_history(
            conversation_id=conversation_id
        )
        answers[f"get_messages({conversation_id})"] = conversations.get_messages(
            conversation_id=conversation_id
        )
    return answers


def test_sdk_parses_the_gateway_exactly_as_the_standin(
    seeded: tuple[Mistral, list[str]], gateway: Mistral
) -> None:
    """list, get, get_history and get_messages parse to equal models from both servers."""
    mistral, ids = seeded
    expected = _reads(mistral, ids)
    answered = _reads(gateway, ids)
    assert answered.keys() == expected.keys()
    for call, want in expected.items():
        got = answered[call]
        assert type(got) is type(want), call
        if isinstance(want, list):
            assert [type(x) for x in got] == [type(x) for x in want], call
            assert [x.model_dump() for x in got] == [x.model_dump() for x in want], call
        else:
            assert got.model_dump() == want.model_dump(), call
    # The comparison covered the interesting kinds, not just empty answers.
    kinds = {e.type for c in ids for e in expected[f"get_history({c})"].entries}
    assert kinds == {"message.input", "message.output", "function.call", "function.result"}
    assert len(expected["list(metadata=team a)"]) == 3  # the restart keeps its metadata


def test_sdk_reads_keep_working_with_the_standin_stopped(
    seeded: tuple[Mistral, list[str]], gateway: Mistral, standin: StandIn
) -> None:
    """With Mistral gone, the SDK still reads every conversation through the gateway."""
    mistral, ids = seeded
    expected = _reads(mistral, ids)
    standin.stop()
    with pytest.raises(httpx2.ConnectError):
        mistral.beta.conversations.list()
    assert _reads(gateway, ids) == expected


def test_sdk_gets_a_typed_422_for_a_bad_page_size(
    seeded: tuple[Mistral, list[str]], gateway: Mistral
) -> None:
    """A page_size below 1 raises HTTPValidationError naming query.page_size."""
    with pytest.raises(errors.HTTPValidationError) as raised:
        gateway.beta.conversations.list(page_size=0)
    assert raised.value.data.detail is not None
    assert raised.value.data.detail[0].loc == ["query", "page_size"]


def test_sdk_gets_404_for_an_unknown_conversation(
    seeded: tuple[Mistral, list[str]], gateway: Mistral
) -> None:
    """An unknown id is an SDKError with status 404 from the gateway, as from Mistral."""
    for client in (seeded[0], gateway):
        with pytest.raises(errors.SDKError) as raised:
            client.beta.conversations.get_history(conversation_id="conv_unknown")
        assert raised.value.status_code == 404

"""A turn's token reservation (`shared.limits.estimate`) counts what Mistral will be sent."""

from __future__ import annotations

import dataclasses
import json

import pytest

from shared.container import Container
from shared.conversations import store
from shared.db import Conn
from shared.errors import NotFound
from shared.limits.estimate import call_reservation, text_tokens, turn_reservation

OWNER = "tenant-a"


def test_word_dense_text_counts_a_token_per_word() -> None:
    """300 one-letter words are 300 tokens, not the 150 characters / 4 made of them."""
    assert text_tokens(" ".join(["a"] * 300)) == 300
    assert text_tokens("x" * 400) == 100
    assert text_tokens("你好世界") == 4


def test_an_append_reserves_the_conversations_last_prompt_and_completion(
    container: Container,
) -> None:
    """The stored usage of the last turn (prompt 500, completion 40) is sent again."""
    entries = [
        {"object": "entry", "type": "message.input", "id": "in", "role": "user", "content": "x"},
        {"object": "entry", "type": "message.output", "id": "out", "content": "y"},
    ]
    event = store.UsageEvent(
        owner=OWNER,
        key_id="k",
        operation="conversations.start",
        status=200,
        usage=store.Usage(500, 40),
        agent_id=None,
        model="m",
        conversation_id="conv-r",
    )
    store.save_turn(container.pool, event=event, entries=entries, new={"model": "m"})
    body = {"inputs": "next", "completion_args": {"max_tokens": 10}}
    with container.pool.connection() as conn:
        fresh = turn_reservation(conn, container.settings, OWNER, body, None)
        append = turn_reservation(conn, container.settings, OWNER, body, "conv-r")
        other = turn_reservation(conn, container.settings, "tenant-b", body, "conv-r")
    assert append - fresh == 540
    assert other == fresh


def _agent(conn: Conn, agent_id: str) -> None:
    """An agent of OWNER with 700 one-piece words of instructions and max_tokens 20."""
    conn.run(
        "INSERT INTO agents (id, owner_id, name, model, instructions, completion_args, body,"
        " created_at, updated_at) VALUES (:id, :owner, :id, 'm', :instructions,"
        " CAST(:args AS jsonb), '{}', now(), now())",
        id=agent_id,
        owner=OWNER,
        instructions=" ".join(["a"] * 700),
        args=json.dumps({"max_tokens": 20}),
    )


def test_a_start_with_an_agent_reserves_its_instructions_and_max_tokens(
    container: Container,
) -> None:
    """The agent's instructions are part of the prompt; its max_tokens caps the completion."""
    with container.pool.connection() as conn:
        _agent(conn, "ag_r")
        agent = store.require_agent(conn, OWNER, "ag_r")
    body = {"inputs": "hi", "agent_id": "ag_r"}
    reserved = turn_reservation(None, container.settings, OWNER, body, None, agent)
    assert 720 <= reserved < 760


def test_an_agents_completion_reserves_like_a_turn_with_that_agent(
    container: Container,
) -> None:
    """agents.complete counts the agent's instructions; the body's max_tokens, else the
    agent's, bounds the completion, as a turn does."""
    with container.pool.connection() as conn:
        _agent(conn, "ag_c")
        agent = store.require_agent(conn, OWNER, "ag_c")
    settings = container.settings
    message = {"role": "user", "content": "hi"}
    body = {"agent_id": "ag_c", "messages": [message]}
    agents = call_reservation(settings, "agents.complete", body, agent)
    capped = call_reservation(settings, "agents.complete", {**body, "max_tokens": 5}, agent)
    without = call_reservation(settings, "agents.complete", body)
    # message: "user" and "hi" (one piece each) and the entry's overhead
    assert agents == 700 + 6 + 20
    assert capped == 700 + 6 + 5
    assert without == 6 + settings.token_reserve_completion


def test_another_tenants_agent_is_not_read_for_a_reservation(container: Container) -> None:
    """The one read of an agent, ownership and reservation together, refuses another
    tenant's as missing: 404, nothing counted from it."""
    with container.pool.connection() as conn:
        _agent(conn, "ag_x")
        with pytest.raises(NotFound):
            store.require_agent(conn, "tenant-b", "ag_x")


def test_no_turn_reserves_more_than_the_models_context(container: Container) -> None:
    """A max_tokens past the context window reserves the window."""
    settings = dataclasses.replace(container.settings, model_context_tokens=5_000)
    body = {"inputs": "hi", "completion_args": {"max_tokens": 10**9}}
    with container.pool.connection() as conn:
        assert turn_reservation(conn, settings, OWNER, body, None) == 5_000

"""A caller that resets its connection mid-stream, through the router as deployed
(issue 16, findings 2 and 3): the turn is charged and stored as Mistral made it."""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

from mistralai.client import Mistral

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import create_key

MODEL = "mistral-small-latest"
OWNER = "e2e-abandon-tenant"
# The stand-in answers max_tokens words exactly (one token each) and counts the prompt's
# words: the usage it reports for this turn is known before it is sent.
MAX_TOKENS = 32_000
INPUTS = "a long story please"


def _stored_usage(container: Container) -> list[dict[str, Any]]:
    with container.pool.connection() as conn:
        return conn.all(
            "SELECT conversation_id, prompt_tokens, completion_tokens FROM usage_events"
            " WHERE owner_id = :owner ORDER BY id",
            owner=OWNER,
        )


def test_a_stream_reset_after_16_kb_is_charged_and_stored_whole(
    stack: StackInfo, stack_container: Container
) -> None:
    """Read 16 KB of a 32,000-token stream, reset the socket: the usage event and the
    budget charge are the stand-in's whole usage; the next turn's stored conversation
    equals the stand-in's history."""
    with stack_container.pool.transaction() as conn:
        key = create_key(
            conn,
            owner_id=OWNER,
            name="abandon",
            role="user",
            limits={"token_budget_per_day": 10**9},
        )
    body = json.dumps(
        {
            "inputs": INPUTS,
            "model": MODEL,
            "stream": True,
            "completion_args": {"max_tokens": MAX_TOKENS},
        }
    ).encode()
    host, port = stack.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        b"POST /v1/conversations HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n"
        b"Authorization: Bearer " + key.secret.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    received = b""
    while len(received) < 16_384:
        chunk = sock.recv(4096)
        assert chunk
        received += chunk
    # SO_LINGER 0: close() sends a reset, as a client that crashed or was killed.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert b"conversation.response.done" not in received
    conversation_id = json.loads(received.split(b"data: ", 1)[1].split(b"\n", 1)[0])[
        "conversation_id"
    ]
    deadline = time.monotonic() + 60
    while not _stored_usage(stack_container) and time.monotonic() < deadline:
        time.sleep(0.2)
    expected = len(INPUTS.split()), MAX_TOKENS
    assert [
        (u["prompt_tokens"], u["completion_tokens"]) for u in _stored_usage(stack_container)
    ] == [expected]
    charged = [
        int(stack_container.redis.get(k) or 0)
        for k in stack_container.redis.keys(f"gw:tok:d:{OWNER}:*")
    ]
    assert charged == [sum(expected)]

    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    sdk.beta.conversations.append(conversation_id=conversation_id, inputs="and then?")
    direct = Mistral(api_key="direct", server_url=stack.mistral_url)
    upstream = direct.beta.conversations.get_history(conversation_id=conversation_id)
    with stack_container.pool.connection() as conn:
        rows = conn.all(
            "SELECT id, status, content FROM conversation_entries WHERE conversation_id = :id"
            " ORDER BY seq",
            id=conversation_id,
        )
    assert [r["id"] for r in rows] == [e.id for e in upstream.entries]
    assert {r["status"] for r in rows} == {"complete"}
    assert len(rows[1]["content"].split()) == MAX_TOKENS

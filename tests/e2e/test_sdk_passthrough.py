"""Metered pass-through with the unchanged SDK, through the whole local stack.

Every call is made twice with the same inputs: through the gateway (a gateway key, the
router's URL) and straight to the stand-in. The stand-in is deterministic, so the parsed
answers must match apart from ids and timestamps. Then: the usage the gateway recorded
and charged is the usage Mistral reported, per operation, streams and a caller that
leaves mid-stream included; roles, allow-lists, budgets and agent ownership refuse.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral, errors

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key
from tests.support import error_code

MODEL = "mistral-small-latest"
MESSAGES = [{"role": "user", "content": "What does a gateway meter?"}]
DOCUMENT = {"type": "document_url", "document_url": "https://example.com/paper.pdf"}
AUDIO = {"file_name": "hello.mp3", "content": b"\x00\x01" * 20_000}


@pytest.fixture(scope="module")
def gateway(stack: StackInfo, user_key: NewKey) -> Mistral:
    return Mistral(api_key=user_key.secret, server_url=stack.url)


@pytest.fixture(scope="module")
def direct(stack: StackInfo) -> Mistral:
    return Mistral(api_key="direct", server_url=stack.mistral_url)


def _normal(value: Any) -> Any:
    """An SDK result as plain data, ids and creation times masked."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {
            k: ("<masked>" if k in ("id", "created") or k.endswith("_id") else _normal(v))
            for k, v in value.items()
        }
    return value


def _agent(sdk: Mistral) -> str:
    return str(sdk.beta.agents.create(model=MODEL, name="pass-through agent").id)


def _tenant_agent(stack: StackInfo, container: Container, owner: str) -> str:
    """An agent of `owner`'s, made with an admin key of that tenant (users may not)."""
    with container.pool.transaction() as conn:
        admin = create_key(conn, owner_id=owner, name="agent maker", role="admin")
    return _agent(Mistral(api_key=admin.secret, server_url=stack.url))


def _every_call(sdk: Mistral, agent_id: str) -> list[Any]:
    """One call of every pass-through namespace, streams included, as plain data."""
    seen: list[Any] = [
        sdk.chat.complete(model=MODEL, messages=MESSAGES, max_tokens=12),
        list(sdk.chat.stream(model=MODEL, messages=MESSAGES, max_tokens=5)),
        sdk.fim.complete(model="codestral-latest", prompt="def add(a, b):", suffix="return"),
        list(sdk.fim.stream(model="codestral-latest", prompt="def add(a, b):", max_tokens=4)),
        sdk.embeddings.create(model="mistral-embed", inputs=["one text", "and another"]),
        sdk.agents.complete(agent_id=agent_id, messages=MESSAGES, max_tokens=7),
        list(sdk.agents.stream(agent_id=agent_id, messages=MESSAGES, max_tokens=3)),
        sdk.classifiers.classify(model="ministral-8b-latest", inputs=["is this spam?"]),
        sdk.classifiers.classify_chat(model="ministral-8b-latest", input=[{"messages": MESSAGES}]),
        sdk.classifiers.moderate(model="mistral-moderation-latest", inputs="a calm sentence"),
        sdk.classifiers.moderate_chat(model="mistral-moderation-latest", inputs=MESSAGES),
        sdk.ocr.process(model="mistral-ocr-latest", document=DOCUMENT),
        sdk.audio.transcriptions.complete(model="voxtral-mini-latest", file=AUDIO),
        list(sdk.audio.transcriptions.stream(model="voxtral-mini-latest", file=AUDIO)),
        sdk.audio.speech.complete(input="Hello from the gateway"),
        list(sdk.audio.speech.complete(input="Hello from the gateway", stream=True)),
    ]
    return [_normal(item) for item in seen]


def test_every_namespace_matches_the_stand_in(
    stack: StackInfo, stack_container: Container, gateway: Mistral, direct: Mistral
) -> None:
    """chat, fim, embeddings, agents, classifiers, ocr and audio (streams included) through
    the gateway equal the same calls made straight to the stand-in."""
    got = _every_call(gateway, _tenant_agent(stack, stack_container, "e2e-tenant"))
    expected = _every_call(direct, _agent(direct))
    assert len(got) == len(expected)
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"call {step}"


def test_async_twins_match_the_stand_in(gateway: Mistral, direct: Mistral) -> None:
    """complete_async, stream_async and create_async through the gateway match the stand-in."""

    async def run(sdk: Mistral) -> list[Any]:
        chat = await sdk.chat.complete_async(model=MODEL, messages=MESSAGES)
        stream = await sdk.chat.stream_async(model=MODEL, messages=MESSAGES, max_tokens=4)
        events = [event async for event in stream]
        embedded = await sdk.embeddings.create_async(model="mistral-embed", inputs="async")
        fim = await sdk.fim.complete_async(model="codestral-latest", prompt="x = ")
        moderated = await sdk.classifiers.moderate_async(model="m", inputs=["async"])
        return [_normal(x) for x in (chat, events, embedded, fim, moderated)]

    assert asyncio.run(run(gateway)) == asyncio.run(run(direct))


def test_mistral_validation_errors_come_back_unchanged(stack: StackInfo, user_key: NewKey) -> None:
    """A body Mistral refuses (422, HTTPValidationError) reaches the caller byte for byte."""
    body = {"model": "mistral-embed", "input": "x", "output_dimension": "big"}
    via = httpx2.post(
        stack.url + "/v1/embeddings",
        json=body,
        headers={"Authorization": f"Bearer {user_key.secret}"},
        timeout=30,
    )
    ref = httpx2.post(
        stack.mistral_url + "/v1/embeddings",
        json=body,
        headers={"Authorization": "Bearer direct"},
        timeout=30,
    )
    assert (via.status_code, via.content) == (ref.status_code, ref.content)
    assert via.status_code == 422
    assert via.json()["detail"][0]["loc"][:2] == ["body", "output_dimension"]


# -- usage and budgets ----------------------------------------------------------------------


def _tenant_key(container: Container, owner: str, **options: Any) -> NewKey:
    with container.pool.transaction() as conn:
        return create_key(conn, owner_id=owner, name=owner, role="user", **options)


def _events(container: Container, owner: str) -> list[tuple[str, str | None, int, int]]:
    with container.pool.connection() as conn:
        rows = conn.all(
            "SELECT operation, model, prompt_tokens, completion_tokens FROM usage_events"
            " WHERE owner_id = :owner ORDER BY id",
            owner=owner,
        )
    return [(r["operation"], r["model"], r["prompt_tokens"], r["completion_tokens"]) for r in rows]


def _charged(container: Container, owner: str) -> int:
    return sum(
        int(container.redis.get(k) or 0) for k in container.redis.keys(f"gw:tok:d:{owner}:*")
    )


def _tokens(usage: Any) -> tuple[int, int]:
    return usage.prompt_tokens or 0, usage.completion_tokens or 0


def test_usage_is_recorded_and_charged_per_operation(
    stack: StackInfo, stack_container: Container
) -> None:
    """A chat stream, an embeddings call and an agents completion each leave one usage event
    with Mistral's usage, the budget is charged their sum, and /gateway/v1/usage shows them
    per operation."""
    owner = "e2e-pass-usage"
    key = _tenant_key(stack_container, owner, limits={"token_budget_per_day": 10**6})
    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    chunks = list(sdk.chat.stream(model=MODEL, messages=MESSAGES, max_tokens=9))
    streamed = chunks[-1].data.usage
    embedded = sdk.embeddings.create(model="mistral-embed", inputs=["a b c", "d e"]).usage
    agent = _tenant_agent(stack, stack_container, owner)
    completed = sdk.agents.complete(agent_id=agent, messages=MESSAGES, max_tokens=4).usage

    assert _events(stack_container, owner) == [
        ("chat.complete", MODEL, *_tokens(streamed)),
        ("embeddings.create", "mistral-embed", *_tokens(embedded)),
        # An agent's call is recorded under the model Mistral answered with: the agent's.
        ("agents.complete", MODEL, *_tokens(completed)),
    ]
    assert _tokens(streamed) == (len(MESSAGES[0]["content"].split()), 9)
    total = sum(sum(_tokens(u)) for u in (streamed, embedded, completed))
    assert _charged(stack_container, owner) == total

    answer = httpx2.get(
        stack.url + "/gateway/v1/usage?group_by=operation",
        headers={"Authorization": f"Bearer {key.secret}"},
        timeout=30,
    )
    report = answer.json()
    rows = {r["operation"]: r["total_tokens"] for r in report["data"]}
    assert rows["chat.complete"] == sum(_tokens(streamed))
    assert rows["embeddings.create"] == sum(_tokens(embedded))
    assert rows["agents.complete"] == sum(_tokens(completed))


def _units(container: Container, owner: str) -> list[tuple[str, int, int]]:
    with container.pool.connection() as conn:
        rows = conn.all(
            "SELECT operation, pages, audio_seconds FROM usage_events"
            " WHERE owner_id = :owner ORDER BY id",
            owner=owner,
        )
    return [(r["operation"], r["pages"], r["audio_seconds"]) for r in rows]


def _usage_report(stack: StackInfo, key: NewKey, group_by: str) -> Any:
    answer = httpx2.get(
        stack.url + f"/gateway/v1/usage?group_by={group_by}",
        headers={"Authorization": f"Bearer {key.secret}"},
        timeout=30,
    )
    assert answer.status_code == 200
    return answer.json()


def test_ocr_pages_and_audio_seconds_are_recorded_and_summed_per_tenant(
    stack: StackInfo, stack_container: Container
) -> None:
    """ocr.process and audio.transcriptions.complete and stream through the gateway record
    the pages and seconds of audio the SDK parsed from Mistral's answers, and the usage API
    sums them per operation and per key for their tenant alone."""
    owner, other = "e2e-pass-units", "e2e-pass-units-other"
    key = _tenant_key(stack_container, owner)
    second = _tenant_key(stack_container, owner)
    outsider = _tenant_key(stack_container, other)
    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    pages = [
        sdk.ocr.process(model="mistral-ocr-latest", document=document).usage_info.pages_processed
        for document in (DOCUMENT, {**DOCUMENT, "document_url": "https://example.com/b.pdf"})
    ]
    whole = sdk.audio.transcriptions.complete(model="voxtral-mini-latest", file=AUDIO).usage
    events = list(sdk.audio.transcriptions.stream(model="voxtral-mini-latest", file=AUDIO))
    streamed = events[-1].data.usage
    long_audio = {"file_name": "long.mp3", "content": b"\x02" * 80_000}
    theirs = Mistral(api_key=second.secret, server_url=stack.url)
    later = theirs.audio.transcriptions.complete(model="voxtral-mini-latest", file=long_audio)
    seconds = [u.prompt_audio_seconds or 0 for u in (whole, streamed, later.usage)]
    # Another tenant's calls never count in this one's figures.
    foreign = Mistral(api_key=outsider.secret, server_url=stack.url)
    foreign.ocr.process(model="mistral-ocr-latest", document=DOCUMENT)
    foreign.audio.transcriptions.complete(model="voxtral-mini-latest", file=long_audio)

    assert seconds == [2, 2, 5]
    assert _units(stack_container, owner) == [
        ("ocr.process", pages[0], 0),
        ("ocr.process", pages[1], 0),
        ("audio.transcriptions.complete", 0, seconds[0]),
        ("audio.transcriptions.complete", 0, seconds[1]),
        ("audio.transcriptions.complete", 0, seconds[2]),
    ]
    by_operation = _usage_report(stack, key, "operation")
    rows = {r["operation"]: r for r in by_operation["data"]}
    assert (rows["ocr.process"]["pages"], rows["ocr.process"]["audio_seconds"]) == (sum(pages), 0)
    assert rows["ocr.process"]["total_tokens"] == 0
    transcribed = rows["audio.transcriptions.complete"]
    assert (transcribed["pages"], transcribed["audio_seconds"]) == (0, sum(seconds))
    assert transcribed["requests"] == 3
    assert (by_operation["totals"]["pages"], by_operation["totals"]["audio_seconds"]) == (
        sum(pages),
        sum(seconds),
    )
    by_key = {r["key_id"]: r for r in _usage_report(stack, key, "key")["data"]}
    assert by_key[key.principal.key_id]["audio_seconds"] == seconds[0] + seconds[1]
    assert by_key[second.principal.key_id]["audio_seconds"] == seconds[2]
    assert _units(stack_container, other) == [
        ("ocr.process", pages[0], 0),
        ("audio.transcriptions.complete", 0, seconds[2]),
    ]
    assert _usage_report(stack, outsider, "")["totals"]["audio_seconds"] == seconds[2]


def test_a_chat_stream_left_mid_way_is_charged_whole(
    stack: StackInfo, stack_container: Container
) -> None:
    """Read 16 KB of a 32,000-token chat stream, reset the socket: the usage event and the
    budget charge are the whole usage Mistral reported at the stream's end."""
    owner = "e2e-pass-abandon"
    key = _tenant_key(stack_container, owner, limits={"token_budget_per_day": 10**9})
    max_tokens = 32_000
    body = json.dumps(
        {"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": max_tokens}
    ).encode()
    host, port = stack.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n"
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
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert b"[DONE]" not in received
    deadline = time.monotonic() + 60
    while not _events(stack_container, owner) and time.monotonic() < deadline:
        time.sleep(0.2)
    expected = (len(MESSAGES[0]["content"].split()), max_tokens)
    assert _events(stack_container, owner) == [("chat.complete", MODEL, *expected)]
    assert _charged(stack_container, owner) == sum(expected)


def test_over_budget_calls_are_refused_429(stack: StackInfo, stack_container: Container) -> None:
    """A call whose reservation exceeds what is left of the day's budget gets 429."""
    key = _tenant_key(stack_container, "e2e-pass-budget", limits={"token_budget_per_day": 50})
    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    with pytest.raises(errors.SDKError) as raised:
        sdk.chat.complete(model=MODEL, messages=MESSAGES, max_tokens=100)
    assert raised.value.status_code == 429
    assert error_code(json.loads(raised.value.body)) == "token_budget_exceeded"
    # Within the budget, the call goes through.
    sdk.embeddings.create(model="mistral-embed", inputs="small")


# -- refusals -----------------------------------------------------------------------------


def _status(call: Any) -> tuple[int, str, str | None]:
    """The status, gateway error code and param of the refusal `call` meets."""
    with pytest.raises(errors.MistralError) as raised:
        call()
    body = json.loads(raised.value.body)
    return raised.value.status_code, error_code(body), body["param"]


def test_read_only_keys_may_not_spend(stack: StackInfo, stack_container: Container) -> None:
    """A read_only key is refused every pass-through call with 403."""
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id="e2e-pass-ro", name="ro", role="read_only")
    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    assert _status(lambda: sdk.chat.complete(model=MODEL, messages=MESSAGES))[:2] == (
        403,
        "forbidden",
    )
    assert _status(lambda: sdk.embeddings.create(model="mistral-embed", inputs="x"))[0] == 403


def test_allow_lists_refuse_other_models_and_agents(
    stack: StackInfo, stack_container: Container
) -> None:
    """A key limited to some models and agents is refused others with 403 naming the list."""
    owner = "e2e-pass-allow"
    agent = _tenant_agent(stack, stack_container, owner)
    key = _tenant_key(
        stack_container, owner, allowed_models=["mistral-embed"], allowed_agents=["ag_other"]
    )
    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    sdk.embeddings.create(model="mistral-embed", inputs="allowed")
    refused = _status(lambda: sdk.chat.complete(model=MODEL, messages=MESSAGES))
    assert refused == (403, "forbidden", "allowed_models")
    refused = _status(lambda: sdk.agents.complete(agent_id=agent, messages=MESSAGES))
    assert refused == (403, "forbidden", "allowed_agents")


def test_another_tenants_agent_is_not_found(stack: StackInfo, stack_container: Container) -> None:
    """agents.complete with another tenant's agent answers 404, as a missing agent does,
    and Mistral is not asked."""
    theirs = _tenant_agent(stack, stack_container, "e2e-tenant")
    key = _tenant_key(stack_container, "e2e-pass-other")
    sdk = Mistral(api_key=key.secret, server_url=stack.url)
    assert _status(lambda: sdk.agents.complete(agent_id=theirs, messages=MESSAGES))[0] == 404
    assert _events(stack_container, "e2e-pass-other") == []

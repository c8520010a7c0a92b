"""An idempotent start repeated after the gateway failed past Mistral's answer (issue 16,
finding 5): the repeat finds the conversation Mistral made instead of starting another.
Through the unchanged SDK, against the start function served over HTTP."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mistralai.client import Mistral
from werkzeug.serving import make_server

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.tenancy.keys import NewKey
from tests.support import function_app, make_key

MODEL = "mistral-small-latest"


@pytest.fixture(scope="module")
def start_url() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, function_app("start"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def gateway(container: Container, base_settings: Settings, standin: StandIn) -> Iterator[Container]:
    standin.reset()
    settings = dataclasses.replace(
        base_settings, mistral_server_url=standin.url, breaker_failure_threshold=1000
    )
    local = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(local)
    yield local
    set_container(previous)


@pytest.fixture
def key(gateway: Container) -> NewKey:
    return make_key(gateway, "user", owner="tenant-a")


@contextmanager
def _gateway_fails_after_mistral(container: Container) -> Iterator[None]:
    """The turn's write and the key's completion both fail (the database went away
    after Mistral answered, or the instance died): the key stays in progress."""
    with container.pool.connection() as conn:
        conn.run("ALTER TABLE usage_events ADD CONSTRAINT down CHECK (status < 0) NOT VALID")
        conn.run(
            "ALTER TABLE idempotency_records ADD CONSTRAINT down"
            " CHECK (status <> 'completed') NOT VALID"
        )
    try:
        yield
    finally:
        with container.pool.connection() as conn:
            conn.run("ALTER TABLE usage_events DROP CONSTRAINT down")
            conn.run("ALTER TABLE idempotency_records DROP CONSTRAINT down")
            # The first attempt's hold on the key runs out (its lock), as after a crash.
            conn.run("UPDATE idempotency_records SET locked_until = now() - interval '1 second'")


def _upstream_history(standin: StandIn, conversation_id: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{standin.url}/v1/conversations/{conversation_id}/history",
        headers={"Authorization": "Bearer x"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
        entries: list[dict[str, Any]] = json.loads(reply.read())["entries"]
        return entries


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_repeat_after_a_failure_past_mistrals_answer_calls_mistral_once(
    gateway: Container, key: NewKey, standin: StandIn, start_url: str, stream: bool
) -> None:
    """The repeat answers with the first attempt's conversation, stored; Mistral is called
    once and holds one conversation."""
    sdk = Mistral(api_key=key.secret, server_url=start_url)
    headers = {"Idempotency-Key": f"once-{stream}"}
    args: dict[str, Any] = {"model": MODEL, "inputs": "only once", "http_headers": headers}

    def start() -> tuple[str, list[Any]]:
        if not stream:
            answer = sdk.beta.conversations.start(**args)
            return answer.conversation_id, [o.content for o in answer.outputs]
        events = list(sdk.beta.conversations.start_stream(**args))
        assert type(events[-1].data).__name__ == "ResponseDoneEvent"
        text = "".join(e.data.content for e in events if hasattr(e.data, "content"))
        return events[0].data.conversation_id, [text]

    with _gateway_fails_after_mistral(gateway):
        first_id, first_outputs = start()
    second_id, second_outputs = start()
    assert standin.calls()["conversations.start"] == 1
    assert second_id == first_id
    assert second_outputs == first_outputs
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT body FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
            id=first_id,
        )
    assert [r["body"] for r in rows] == _upstream_history(standin, first_id)
    # A third repeat replays the recorded answer.
    assert start()[0] == first_id
    assert standin.calls()["conversations.start"] == 1

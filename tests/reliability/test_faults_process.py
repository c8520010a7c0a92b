"""A gateway process SIGKILLed mid-stream, mid-turn and under load, then replaced.

Cloud Run replaces a crashed instance and its load balancer answers 502 for requests
the instance took with it; the local router does the same. What must hold: a caller
whose stream dies with the process sees it break (never a clean end), a caller whose
turn died gets a 502 and nothing is stored for it, nobody waits for ever, and the
replacement serves at once. Killed mid-batch (a redelivered Pub/Sub message runs every
item exactly once) is tests/functional/test_batch_served.py::
test_killed_mid_batch_then_redelivered_runs_every_item_exactly_once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx2

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant, sse_events
from reliability.pressure import Pressure
from tests.support import error_code

MODEL = "mistral-small-latest"
SUITE = "faults: processes"


def test_start_killed_mid_stream_breaks_the_stream_and_is_replaced(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """start SIGKILLed mid-stream: the caller's stream breaks without done, nothing is stored."""
    fstack.proxy.throttle(0.01, 128)
    received = b""
    broke = None
    with httpx2.stream(
        "POST",
        fstack.url + "/v1/conversations",
        json={
            "inputs": "long",
            "model": MODEL,
            "stream": True,
            "completion_args": {"max_tokens": 80},
        },
        headers={**tenant.headers, "Accept": "text/event-stream"},
        timeout=15,
    ) as answer:
        chunks = answer.iter_bytes()
        while b"message.output.delta" not in received:
            received += next(chunks)
        fstack.kill_function("start")
        try:
            for chunk in chunks:
                received += chunk
        except httpx2.HTTPError as exc:
            broke = type(exc).__name__
    fstack.proxy.throttle(0)
    events = sse_events(received.decode())
    conversation_id = events[0][1]["conversation_id"]
    fstack.replace_function("start")
    after = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "after the crash", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    figures.add("faults_injected")
    figures.add("requests_under_fault", 2)
    figures.scenario(SUITE, "start SIGKILLed mid-stream", answers={"200 (cut)": 1})
    assert broke == "RemoteProtocolError"
    assert "conversation.response.done" not in [name for name, _ in events]
    assert fstack.stored_conversation(conversation_id) is None
    assert after.status_code == 200


def test_turn_in_flight_when_start_dies_is_a_502_and_stores_nothing(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """start SIGKILLed mid-turn: a prompt 502 backend_unavailable, and nothing is stored."""
    fstack.inject("latency=1500", count=1, operation="conversations.start")
    result: dict[str, Any] = {}

    def send() -> None:
        started = time.monotonic()
        result["answer"] = httpx2.post(
            fstack.url + "/v1/conversations",
            json={"inputs": "in flight", "model": MODEL},
            headers=tenant.headers,
            timeout=15,
        )
        result["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=send)
    worker.start()
    time.sleep(0.5)
    fstack.kill_function("start")
    worker.join(20)
    figures.add("faults_injected")
    figures.add("requests_under_fault")
    figures.scenario(SUITE, "start SIGKILLed mid-turn", answers={"502": 1})
    answer = result["answer"]
    assert answer.status_code == 502
    assert error_code(answer.json()) == "backend_unavailable"
    assert result["seconds"] < 3.0
    assert fstack.rows("SELECT id FROM conversations WHERE owner_id = :o", o=tenant.owner) == []


def test_function_killed_under_load_answers_502_until_replaced(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """history SIGKILLed under reads: 200 or 502 only, none hangs, 200 again once replaced."""
    conversation_id = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "read me", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    ).json()["conversation_id"]
    path = f"/v1/conversations/{conversation_id}/history"
    with Pressure(fstack.url, lambda c: c.get(path, headers=tenant.headers), threads=3) as load:
        time.sleep(0.5)
        fstack.kill_function("history")
        time.sleep(0.5)
        fstack.replace_function("history")
        healthy = time.monotonic()
        time.sleep(1.0)
    outcomes = load.outcomes
    figures.add("faults_injected")
    figures.add("requests_under_fault", len(outcomes))
    figures.scenario(
        SUITE,
        "history SIGKILLed under load, replaced",
        requests=len(outcomes),
        answers=status_counts(o.status for o in outcomes),
    )
    assert {o.status for o in outcomes} <= {200, 502}
    assert 502 in {o.status for o in outcomes}
    assert {o.error_type for o in outcomes if o.status == 502} == {"backend_unavailable"}
    assert max(o.seconds for o in outcomes) < 3.0
    assert {o.status for o in load.between(healthy + 0.2, time.monotonic())} == {200}

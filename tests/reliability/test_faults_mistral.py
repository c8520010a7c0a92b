"""Mistral failing in every documented way, met by the whole stack over HTTP under load.

Each fault is queued on the stand-in for the next upstream call of one operation
while background readers keep reading an existing conversation; the test asserts the
answer the caller gets (DESIGN §7: Mistral 4xx verbatim, down 502, timing out 504,
Retry-After where known), how many times Mistral was called, what the gateway stored
afterwards (nothing, unless the caller was told the turn succeeded), and that the
readers never noticed (the read path does not depend on Mistral). The same faults
met one at a time inside one function are in tests/functional/test_start.py; this is
the stack tier.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant, sse_events
from reliability.pressure import Pressure
from tests.support import error_code

MODEL = "mistral-small-latest"
SUITE = "faults: Mistral"


@pytest.fixture(scope="module")
def reader(fstack: FaultStack) -> tuple[Tenant, str]:
    """A tenant with one stored conversation, for the background readers."""
    tenant = fstack.tenant("rel-mistral-reader")
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "kept for reading", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    assert answer.status_code == 200
    return tenant, answer.json()["conversation_id"]


@pytest.fixture
def readers(fstack: FaultStack, reader: tuple[Tenant, str]) -> Iterator[Pressure]:
    """Two threads reading a stored conversation's history while the test runs."""
    tenant, conversation_id = reader
    path = f"/v1/conversations/{conversation_id}/history"
    with Pressure(fstack.url, lambda c: c.get(path, headers=tenant.headers), threads=2) as load:
        yield load


def _upstream_conversations(fstack: FaultStack, tenant: Tenant) -> int:
    """How many conversations Mistral holds that this test's tenant started (the turns
    carry the tenant in their metadata: a slow Mistral may finish other tests' turns)."""
    listed = httpx2.get(
        fstack.standin.url + "/v1/conversations",
        params={"page_size": 1000, "metadata": json.dumps({"tenant": tenant.owner})},
        headers={"Authorization": "Bearer reliability"},
        timeout=10,
    )
    return len(listed.json())


def _owned(fstack: FaultStack, tenant: Tenant) -> list[dict[str, Any]]:
    return fstack.rows(
        "SELECT id FROM conversations WHERE owner_id = :owner ORDER BY created_at",
        owner=tenant.owner,
    )


def _record(name: str, answers: list[int], readers: Pressure, faults: int = 1) -> None:
    background = readers.statuses()
    figures.add("faults_injected", faults)
    figures.add("requests_under_fault", len(answers) + len(background))
    figures.scenario(
        SUITE,
        name,
        requests=len(answers) + len(background),
        answers=status_counts(answers),
        background=status_counts(background),
    )


# fault, status, error type, Retry-After, Mistral keeps the conversation (None: not checked,
# as a slow Mistral finishes the start only after the gateway has given up and answered)
START_FAULTS = [
    ("status=500", 502, "upstream_unavailable", None, False),
    ("status=503;retry_after=3", 502, "upstream_unavailable", "3", False),
    ("reset", 502, "upstream_unavailable", None, False),
    ("timeout=6000", 504, "upstream_timeout", None, False),
    ("latency=4000", 504, "upstream_timeout", None, None),
    ("cut=20", 502, "upstream_unavailable", None, False),
    ("malformed", 502, "upstream_unavailable", None, True),
    ("status_after=503", 502, "upstream_unavailable", None, True),
]


@pytest.mark.parametrize(
    ("fault", "status", "kind", "retry_after", "upstream_keeps"),
    START_FAULTS,
    ids=[f[0] for f in START_FAULTS],
)
def test_start_fault_answers_as_documented_and_stores_nothing(
    fstack: FaultStack,
    tenant: Tenant,
    readers: Pressure,
    fault: str,
    status: int,
    kind: str,
    retry_after: str | None,
    upstream_keeps: bool | None,
) -> None:
    """A failed start answers 502/504 (+ Retry-After if given) after one call; nothing stored."""
    calls = fstack.standin.calls()["conversations.start"]
    upstream_before = _upstream_conversations(fstack, tenant)
    fstack.inject(fault, count=5, operation="conversations.start")
    started = time.monotonic()
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "fail me", "model": MODEL, "metadata": {"tenant": tenant.owner}},
        headers=tenant.headers,
        timeout=15,
    )
    elapsed = time.monotonic() - started
    fstack.clear_faults()
    time.sleep(0.2)
    readers.stop()
    _record(fault, [answer.status_code], readers)

    assert answer.status_code == status
    assert error_code(answer.json()) == kind
    assert answer.headers.get("Retry-After") == retry_after
    assert elapsed < 5.0  # the timeout is 3 s: nothing waits for the stand-in's 4 or 6 s
    assert fstack.standin.calls()["conversations.start"] == calls + 1
    if upstream_keeps is not None:
        assert (_upstream_conversations(fstack, tenant) > upstream_before) is upstream_keeps
    assert _owned(fstack, tenant) == []
    assert set(readers.statuses()) == {200}


def test_mistral_429_with_long_retry_after_reaches_the_caller_verbatim(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """Mistral's 429 with a long Retry-After reaches the caller verbatim, after one call."""
    calls = fstack.standin.calls()["conversations.start"]
    fstack.inject("status=429;retry_after=7", count=3, operation="conversations.start")
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "busy", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    readers.stop()
    _record("status=429;retry_after=7", [answer.status_code], readers)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json() == {
        "object": "error",
        "message": "Requests rate limit exceeded",
        "type": "rate_limited",
        "param": None,
        "code": "rate_limited",
    }
    assert fstack.standin.calls()["conversations.start"] == calls + 1
    assert _owned(fstack, tenant) == []
    assert set(readers.statuses()) == {200}


def test_mistral_429_with_short_retry_after_is_retried_once_and_stored_once(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """A 429 with a short Retry-After is retried once, and one conversation is stored."""
    calls = fstack.standin.calls()["conversations.start"]
    fstack.inject("status=429;retry_after_ms=300", count=1, operation="conversations.start")
    started = time.monotonic()
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "busy then fine", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    elapsed = time.monotonic() - started
    readers.stop()
    _record("status=429;retry_after_ms=300 (once)", [answer.status_code], readers)
    assert answer.status_code == 200
    assert elapsed >= 0.3
    assert fstack.standin.calls()["conversations.start"] == calls + 2
    conversation_id = answer.json()["conversation_id"]
    assert [r["id"] for r in _owned(fstack, tenant)] == [conversation_id]
    upstream = fstack.upstream_history(conversation_id)
    assert upstream is not None
    assert [e["id"] for e in fstack.stored_entries(conversation_id)] == [e["id"] for e in upstream]


def test_mistral_4xx_is_relayed_verbatim(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """Mistral's 400 reaches the caller with the same status and body; nothing is stored."""
    fstack.inject("status=400", count=1, operation="conversations.start")
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "bad", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    readers.stop()
    _record("status=400", [answer.status_code], readers)
    assert answer.status_code == 400
    assert answer.json()["message"] == "Bad Request (injected by standin)"
    assert _owned(fstack, tenant) == []


# (A timeout on append is the same code path as on start, above, and costs 3 s.)
APPEND_FAULTS = ["status=500", "status=503", "reset", "cut=10", "malformed", "status_after=503"]


def test_failed_appends_leave_the_stored_history_as_it_was(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """Failed appends leave the stored entries as they were; the next good one mirrors Mistral."""
    first = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "base", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    ).json()
    conversation_id = first["conversation_id"]
    before = [e["id"] for e in fstack.stored_entries(conversation_id)]
    statuses = []
    for fault in APPEND_FAULTS:
        fstack.inject(fault, count=1, operation="conversations.append")
        answer = httpx2.post(
            f"{fstack.url}/v1/conversations/{conversation_id}",
            json={"inputs": f"append under {fault}"},
            headers=tenant.headers,
            timeout=15,
        )
        statuses.append(answer.status_code)
        assert answer.status_code in (502, 504), fault
        assert [e["id"] for e in fstack.stored_entries(conversation_id)] == before, fault
    good = httpx2.post(
        f"{fstack.url}/v1/conversations/{conversation_id}",
        json={"inputs": "and now it works"},
        headers=tenant.headers,
        timeout=15,
    )
    readers.stop()
    _record("append: " + ", ".join(APPEND_FAULTS), statuses, readers, faults=len(APPEND_FAULTS))
    assert good.status_code == 200
    assert "Gateway-Stored" not in good.headers
    upstream = fstack.upstream_history(conversation_id)
    assert upstream is not None
    stored = fstack.stored_entries(conversation_id)
    assert [e["id"] for e in stored] == [e["id"] for e in upstream]
    assert [e["body"] for e in stored] == upstream
    assert set(readers.statuses()) == {200}


def test_unknown_entry_type_is_relayed_and_stored(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """An unknown entry type is relayed, stored, and read back through the history route."""
    fstack.inject("unknown_entry", count=1, operation="conversations.start")
    fstack.inject("unknown_entry", count=1, operation="conversations.history")
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "think first", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    readers.stop()
    _record("unknown_entry", [answer.status_code], readers, faults=2)
    assert answer.status_code == 200
    assert "Gateway-Stored" not in answer.headers
    outputs = answer.json()["outputs"]
    assert [o["type"] for o in outputs][-1] == "message.thinking"
    conversation_id = answer.json()["conversation_id"]
    stored = fstack.stored_entries(conversation_id)
    assert "message.thinking" in [e["type"] for e in stored]
    read = httpx2.get(
        f"{fstack.url}/v1/conversations/{conversation_id}/history",
        headers=tenant.headers,
        timeout=15,
    )
    assert read.status_code == 200
    thinking = [e for e in read.json()["entries"] if e["type"] == "message.thinking"]
    assert thinking == [e["body"] for e in stored if e["type"] == "message.thinking"]


def _stream(fstack: FaultStack, tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    return httpx2.post(
        fstack.url + path,
        json={**body, "stream": True},
        headers={**tenant.headers, "Accept": "text/event-stream"},
        timeout=15,
    )


def test_stream_cut_mid_way_ends_with_an_error_event_and_an_incomplete_entry(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """A stream cut mid-way ends with an error event; what arrived is stored incomplete."""
    fstack.inject("cut=5", count=1, operation="conversations.start")
    started = _stream(fstack, tenant, "/v1/conversations", {"inputs": "cut", "model": MODEL})
    events = sse_events(started.text)
    conversation_id = events[0][1]["conversation_id"]
    good = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "whole", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    ).json()["conversation_id"]
    fstack.inject("cut=3", count=1, operation="conversations.append")
    appended = _stream(fstack, tenant, f"/v1/conversations/{good}", {"inputs": "more"})
    readers.stop()
    _record("stream cut=K", [started.status_code, appended.status_code], readers, faults=2)

    for answer in (started, appended):
        names = [name for name, _ in sse_events(answer.text)]
        assert answer.status_code == 200
        assert names[-1] == "conversation.response.error"
        assert "conversation.response.done" not in names
    statuses = [(e["type"], e["status"]) for e in fstack.stored_entries(conversation_id)]
    assert ("message.output", "incomplete") in statuses
    # Mistral did not keep the cut start; the gateway keeps what the caller saw, marked.
    assert fstack.upstream_history(conversation_id) is None
    appended_rows = fstack.stored_entries(good)
    assert [r["status"] for r in appended_rows[:2]] == ["complete", "complete"]
    assert appended_rows[-1]["status"] == "incomplete"
    assert set(readers.statuses()) == {200}


def test_stream_reset_before_the_first_event_is_a_502_and_stores_nothing(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """A stream reset after Mistral acted is a 502 before any event; nothing is stored."""
    upstream_before = _upstream_conversations(fstack, tenant)
    fstack.inject("reset_after", count=1, operation="conversations.start")
    body = {"inputs": "reset", "model": MODEL, "metadata": {"tenant": tenant.owner}}
    answer = _stream(fstack, tenant, "/v1/conversations", body)
    readers.stop()
    _record("stream reset_after", [answer.status_code], readers)
    assert answer.status_code == 502
    assert error_code(answer.json()) == "upstream_unavailable"
    assert _owned(fstack, tenant) == []
    assert _upstream_conversations(fstack, tenant) == upstream_before + 1


@pytest.mark.parametrize("fault", ["unknown_entry", "malformed"])
def test_stream_with_an_odd_event_is_relayed_as_sent_and_stored(
    fstack: FaultStack, tenant: Tenant, readers: Pressure, fault: str
) -> None:
    """An unknown or non-JSON stream event is relayed as sent; the turn is stored as in Mistral."""
    fstack.inject(fault, count=1, operation="conversations.start")
    answer = _stream(fstack, tenant, "/v1/conversations", {"inputs": "odd", "model": MODEL})
    readers.stop()
    _record(f"stream {fault}", [answer.status_code], readers)
    events = sse_events(answer.text)
    assert answer.status_code == 200
    assert events[-1][0] == "conversation.response.done"
    if fault == "unknown_entry":
        assert "message.thinking.delta" in [name for name, _ in events]
    else:
        assert any(isinstance(data, str) for _, data in events)
    conversation_id = events[0][1]["conversation_id"]
    upstream = fstack.upstream_history(conversation_id)
    assert upstream is not None
    assert [e["id"] for e in fstack.stored_entries(conversation_id)] == [e["id"] for e in upstream]


def test_history_unreadable_after_a_turn_is_reconciled_by_the_next_turn(
    fstack: FaultStack, tenant: Tenant, readers: Pressure
) -> None:
    """Inputs stored while Mistral's history was unreadable are reconciled, not stored twice."""
    fstack.inject("status=503", count=3, operation="conversations.history")
    first = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "remember me once", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )
    conversation_id = first.json()["conversation_id"]
    provisional = fstack.stored_entries(conversation_id)
    second = httpx2.post(
        f"{fstack.url}/v1/conversations/{conversation_id}",
        json={"inputs": "and me"},
        headers=tenant.headers,
        timeout=15,
    )
    readers.stop()
    _record("history 503 x3 after a turn", [first.status_code, second.status_code], readers)
    assert first.status_code == second.status_code == 200
    assert "Gateway-Stored" not in first.headers
    assert [e["id"][:5] for e in provisional] == ["gwin_", first.json()["outputs"][0]["id"][:5]]
    upstream = fstack.upstream_history(conversation_id)
    assert upstream is not None
    stored = fstack.stored_entries(conversation_id)
    assert [e["id"] for e in stored] == [e["id"] for e in upstream]
    assert [e["body"] for e in stored] == upstream

"""Redis (Valkey) stopped under load, then back, against the whole stack over HTTP.

Documented (DESIGN §5, §4): with Redis away nothing hangs or crashes; the rate
limiter answers at once in its configured mode (fail-open lets requests through
without rate-limit headers, fail-closed refuses them with 503 + Retry-After before
anything reaches Mistral); the circuit breaker falls back to a local one with the
same rules; when Redis returns, both use it again.
"""

from __future__ import annotations

import time

import httpx2

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant
from reliability.ledger import Ledger, TurnRecord, classify, verify
from reliability.traffic import Traffic
from tests.support import error_code

MODEL = "mistral-small-latest"
SUITE = "faults: Redis"


def _start(url: str, tenant: Tenant) -> httpx2.Response:
    return httpx2.post(
        url + "/v1/conversations",
        json={"inputs": "hello", "model": MODEL},
        headers=tenant.headers,
        timeout=15,
    )


def _record(ledger: Ledger, tenant: Tenant, answer: httpx2.Response) -> None:
    outcome, conversation_id, outputs = classify(answer)
    ledger.record(
        TurnRecord(
            tenant.owner, "start", False, outcome, answer.status_code, conversation_id, outputs
        )
    )


def _own_redis_db(fstack: FaultStack, number: int) -> str:
    return fstack.info.redis_url.rsplit("/", 1)[0] + f"/{number}"


def test_redis_outage_under_load_fails_open_without_hanging_and_recovers(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """Valkey down under load (fail-open): all 200, none waits, rate-limit headers come back."""
    with Traffic(fstack, [tenant], rate=16, workers=4) as traffic:
        time.sleep(1.0)
        traffic.phase = "outage"
        fstack.stop_redis()
        time.sleep(0.5)
        during = _start(fstack.url, tenant)
        time.sleep(1.5)
        fstack.start_redis()
        traffic.phase = "after"
        time.sleep(1.5)
        after = _start(fstack.url, tenant)
    for probe in (during, after):
        _record(traffic.ledger, tenant, probe)
    answers = traffic.answers
    problems = verify(fstack, traffic.ledger, traffic.owners)
    figures.add("faults_injected")
    figures.add("requests_under_fault", len(answers) + 2)
    figures.scenario(
        SUITE,
        "Valkey stopped under load (fail-open)",
        requests=len(answers),
        answers=status_counts(a.status for a in answers),
        slowest_s=round(max(a.seconds for a in answers), 2),
        data_problems=sum(len(v) for v in problems.values()),
    )
    assert {a.status for a in answers} == {200}
    assert max(a.seconds for a in traffic.in_phase("outage")) < 2.0
    assert during.status_code == 200
    assert "RateLimit-Limit" not in during.headers
    assert after.status_code == 200
    assert after.headers["RateLimit-Limit"] == "100000"
    assert problems == {}


def test_breaker_falls_back_to_a_local_circuit_while_redis_is_down(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """With Redis down, a local breaker opens at the threshold and closes after a trial call."""
    settings = {
        "BREAKER_FAILURE_THRESHOLD": "3",
        "BREAKER_COOLDOWN_S": "2",
        "REDIS_URL": _own_redis_db(fstack, 5),
    }
    with fstack.extra_function("start", settings) as url:
        fstack.stop_redis()
        fstack.inject("status=503", count=3, operation="conversations.start")
        calls = fstack.standin.calls()["conversations.start"]
        failing = [_start(url, tenant) for _ in range(3)]
        refused = _start(url, tenant)
        calls_when_open = fstack.standin.calls()["conversations.start"] - calls
        time.sleep(2.2)
        trial = _start(url, tenant)
        closed = _start(url, tenant)
        fstack.start_redis()
        back = _start(url, tenant)
    answers = [a.status_code for a in [*failing, refused, trial, closed, back]]
    figures.add("faults_injected", 2)
    figures.add("requests_under_fault", len(answers))
    figures.scenario(
        SUITE, "breaker with Valkey down (local fallback)", answers=status_counts(answers)
    )
    assert [a.status_code for a in failing] == [502, 502, 502]
    assert refused.status_code == 503
    assert error_code(refused.json()) == "circuit_open"
    assert int(refused.headers["Retry-After"]) >= 1
    assert calls_when_open == 3
    assert (trial.status_code, closed.status_code, back.status_code) == (200, 200, 200)


def test_fail_closed_limiter_refuses_at_once_while_redis_is_down(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """Fail-closed with Redis down: 503 + Retry-After at once, nothing sent upstream or stored."""
    settings = {"RATE_LIMIT_FAILURE_MODE": "fail-closed", "REDIS_URL": _own_redis_db(fstack, 6)}
    with fstack.extra_function("start", settings) as url:
        fstack.stop_redis()
        calls = fstack.standin.calls()["conversations.start"]
        timed = []
        for _ in range(5):
            started = time.monotonic()
            timed.append((_start(url, tenant), time.monotonic() - started))
        calls_during = fstack.standin.calls()["conversations.start"] - calls
        fstack.start_redis()
        deadline = time.monotonic() + 5
        while (back := _start(url, tenant)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
    figures.add("faults_injected")
    figures.add("requests_under_fault", len(timed))
    figures.scenario(
        SUITE,
        "Valkey stopped (fail-closed)",
        answers=status_counts(a.status_code for a, _ in timed),
        slowest_s=round(max(s for _, s in timed), 3),
    )
    for answer, seconds in timed:
        assert answer.status_code == 503
        assert error_code(answer.json()) == "service_unavailable"
        assert answer.headers["Retry-After"] == "1"
        assert seconds < 1.0
    assert calls_during == 0
    assert fstack.rows("SELECT id FROM conversations WHERE owner_id = :o", o=tenant.owner) == [
        {"id": back.json()["conversation_id"]}
    ]

"""The rate limiter against real Valkey: exact under contention, one round trip, outages."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.servers import EmbeddedValkey, free_port
from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.limits.ratelimit import Budget, Limit, RateLimiter
from shared.observability import capture_logs
from tests.support import ROOT, bearer, client, error_code, make_key

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

# Each worker process: build its own limiter, load the script on another key, say it is
# ready, wait for the shared start signal, then ask 250 times as fast as it can.
_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import redis
    from shared.limits.ratelimit import Limit, RateLimiter

    url, key, ready, go, calls = sys.argv[1:5] + [int(sys.argv[5])]
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    limiter = RateLimiter(lambda: client)
    limit = Limit(100, 3600)
    limiter.check("warm-up-" + key + ready, "owner", limit)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.0002)
    started = time.monotonic()
    outcomes = [limiter.check(key, "owner", limit).outcome for _ in range(calls)]
    print(json.dumps({"outcomes": outcomes, "started": started, "ended": time.monotonic()}))
    """
)


def test_four_processes_at_once_get_exactly_the_limit(
    redis_client: redis.Redis, base_settings: Settings, tmp_path: Path
) -> None:
    """4 OS processes x 250 checks on one key limited to 100 per hour: exactly 100 allowed."""
    # 100 per 3600 s refills one request per 36 s: nothing refills during the test.
    key = "key_" + uuid.uuid4().hex
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = []
    for n in range(4):
        ready = tmp_path / f"ready-{n}"
        args = [sys.executable, str(script), base_settings.redis_url, key, str(ready), str(go)]
        workers.append(
            (
                ready,
                subprocess.Popen(
                    [*args, "250"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
                ),
            )
        )
    try:
        deadline = time.monotonic() + 30
        while not all(ready.exists() for ready, _ in workers):
            assert all(p.poll() is None for _, p in workers), "a worker died while starting"
            assert time.monotonic() < deadline, "workers did not get ready"
            time.sleep(0.01)
        go.touch()
        results = []
        for _, proc in workers:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err.decode()
            results.append(json.loads(out))
    finally:
        for _, proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outcomes = [o for r in results for o in r["outcomes"]]
    assert len(outcomes) == 1000
    assert outcomes.count("allowed") == 100
    assert outcomes.count("limited") == 900
    # The processes really ran side by side: each started before any other had finished.
    assert max(r["started"] for r in results) < min(r["ended"] for r in results)


def _commands_from(url: str, port: str, during: Any) -> list[str]:
    """Commands the client on `port` (not a script) sent while `during()` ran, by MONITOR."""
    seen: list[str] = []
    monitor_client = redis.Redis.from_url(url, socket_timeout=10)
    sentinel = "core-ratelimit-" + uuid.uuid4().hex
    with monitor_client.monitor() as monitor:

        def read() -> None:
            for command in monitor.listen():
                if sentinel in command["command"]:
                    return
                if command["client_port"] == port:
                    seen.append(command["command"].split()[0].upper())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        during()
        redis.Redis.from_url(url).echo(sentinel)
        reader.join(10)
    return seen


def test_a_check_is_one_round_trip(redis_client: redis.Redis, base_settings: Settings) -> None:
    """Once loaded, a check is one EVALSHA and nothing else: by MONITOR, commandstats and client."""
    sent = {"n": 0}

    class CountingConnection(redis.connection.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent["n"] += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool.from_url(
        base_settings.redis_url, connection_class=CountingConnection
    )
    counting = redis.Redis(connection_pool=pool)
    limiter = RateLimiter(lambda: counting)
    limit, budget = Limit(1000, 60), Budget(per_minute=1_000_000, per_day=10_000_000)
    limiter.check("key_rt", "owner_rt", limit, budget, estimate=10)  # loads the script
    # One thread, so the limiter reuses the one pooled connection: its port names it.
    port = str(counting.client_info()["addr"]).rsplit(":", 1)[1]
    calls = 20

    def checks() -> None:
        for _ in range(calls):
            assert limiter.check("key_rt", "owner_rt", limit, budget, estimate=10).allowed

    def stats() -> dict[str, int]:
        found = redis_client.info("commandstats")
        return {name: int(value["calls"]) for name, value in found.items()}

    before, sent["n"] = stats(), 0
    top_level = _commands_from(base_settings.redis_url, port, checks)
    after = stats()
    assert sent["n"] == calls
    assert top_level == ["EVALSHA"] * calls
    assert after["cmdstat_evalsha"] - before.get("cmdstat_evalsha", 0) == calls
    assert after.get("cmdstat_eval", 0) == before.get("cmdstat_eval", 0)
    assert after.get("cmdstat_script|load", 0) == before.get("cmdstat_script|load", 0)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(requests=st.integers(1, 40), window_s=st.integers(1, 100_000))
def test_a_burst_allows_exactly_the_limit(
    redis_client: redis.Redis, requests: int, window_s: int
) -> None:
    """Whatever the limit and window, a burst gets exactly `requests` through, then 429s."""
    limiter = RateLimiter(lambda: redis_client)
    key = "key_" + uuid.uuid4().hex
    limit = Limit(requests, window_s)
    decisions = [limiter.check(key, "owner", limit) for _ in range(requests + 1)]
    assert [d.allowed for d in decisions] == [True] * requests + [False]
    assert [d.remaining for d in decisions[:-1]] == list(range(requests - 1, -1, -1))
    rejected = decisions[-1]
    assert rejected.outcome == "limited"
    # The next request is allowed one emission interval after the burst began, not before.
    interval = window_s / requests
    assert interval - 0.5 <= rejected.retry_after_s <= interval + 0.001


# -- Redis away ----------------------------------------------------------------------------------


def _gateway(container: Container, base_settings: Settings, **changes: Any) -> Container:
    settings = dataclasses.replace(base_settings, **changes)
    return Container(settings, pool=container.pool)


def _get(key: Any) -> Any:
    return client("history").get("/v1/conversations", headers=bearer(key))


@pytest.mark.parametrize("failure", ["stopped", "frozen"])
@pytest.mark.parametrize("mode", ["fail-open", "fail-closed"])
def test_redis_outage_answers_fast_in_the_chosen_mode_and_recovers(
    container: Container,
    base_settings: Settings,
    private_valkey: EmbeddedValkey,
    mode: str,
    failure: str,
) -> None:
    """Redis away: every answer in the chosen mode, Redis tried again only after a pause (not
    on every request); limits resume when it is back."""
    gateway = _gateway(
        container, base_settings, redis_url=private_valkey.url, rate_limit_failure_mode=mode
    )
    previous = set_container(gateway)
    try:
        key = make_key(gateway, "user", rate_limit_requests=1000, rate_limit_window=60)
        healthy = _get(key)
        assert healthy.status_code == 200
        assert healthy.headers["RateLimit-Limit"] == "1000"

        assert private_valkey.proc is not None
        if failure == "stopped":
            private_valkey.stop()
        else:
            os.kill(private_valkey.proc.pid, signal.SIGSTOP)
        with capture_logs() as logs:
            # 12 requests over more than a second: the limiter retries Redis after its
            # 0.5 s pause, and skips it in between.
            for _ in range(12):
                answer = _get(key)
                if mode == "fail-open":
                    assert answer.status_code == 200
                    assert not any(h in answer.headers for h in RATE_HEADERS)
                else:
                    assert answer.status_code == 503
                    assert error_code(answer.get_json()) == "service_unavailable"
                    assert int(answer.headers["Retry-After"]) >= 1
                time.sleep(0.1)
        warnings = [line for line in logs if "rate limiting" in str(line.get("message"))]
        assert len(warnings) >= 2, "each Redis failure is logged"
        assert len(warnings) < 12, "Redis is skipped during the pause, not tried per request"
        access = [line for line in logs if line.get("event") == "access"]
        if mode == "fail-open":
            assert {line["rate_limit"] for line in access} == {"bypassed"}

        if failure == "stopped":
            private_valkey.start()
        else:
            os.kill(private_valkey.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 3
        while True:
            answer = _get(key)
            if answer.status_code == 200 and "RateLimit-Limit" in answer.headers:
                break
            assert time.monotonic() < deadline, "rate limiting did not come back"
            time.sleep(0.05)
    finally:
        set_container(previous)
        gateway.redis.close()  # the pool is the session's: leave it open


# -- token budgets -------------------------------------------------------------------------------


def _budget_keys(decision: Any) -> tuple[str, str]:
    return decision.minute_key, decision.day_key


def test_settle_replaces_the_reservation_by_the_real_usage(redis_client: redis.Redis) -> None:
    """A reservation of 100 tokens settled at 30 leaves 30 counted in both buckets."""
    limiter = RateLimiter(lambda: redis_client)
    budget = Budget(per_minute=1000, per_day=5000)
    decision = limiter.check("key_s", "owner_s", Limit(100, 60), budget, estimate=100)
    assert decision.reserved_tokens == 100
    limiter.settle(decision, 30)
    for key in _budget_keys(decision):
        assert int(redis_client.get(key)) == 30
        assert redis_client.pttl(key) > 0


def test_settle_never_leaves_a_budget_key_without_expiry(redis_client: redis.Redis) -> None:
    """Settling an inactive or expired budget bucket leaves no key without an expiry in Redis."""
    limiter = RateLimiter(lambda: redis_client)
    decision = limiter.check(
        "key_x", "owner_x", Limit(100, 60), Budget(per_minute=1000), estimate=100
    )
    assert redis_client.exists(decision.day_key) == 0  # no day budget: never counted
    limiter.settle(decision, 30)
    # A long stream: the minute bucket expired before the turn was settled.
    later = limiter.check("key_y", "owner_y", Limit(100, 60), Budget(per_minute=1000), 100)
    redis_client.delete(later.minute_key)
    limiter.settle(later, 500)
    for key in (*_budget_keys(decision), *_budget_keys(later)):
        assert redis_client.pttl(key) != -1, f"{key} has no expiry"


def test_a_charge_counts_against_both_buckets_with_their_expiry(redis_client: redis.Redis) -> None:
    """Tokens spent outside a reservation (a batch job's) fill the minute and day buckets,
    each with an expiry, so the next reservation that does not fit is refused."""
    limiter = RateLimiter(lambda: redis_client)
    budget = Budget(per_minute=1000, per_day=100)
    limiter.charge("owner_c", 0)
    limiter.charge("owner_c", 90)
    refused = limiter.check("key_c", "owner_c", Limit(100, 60), budget, estimate=11)
    assert refused.outcome == "budget"
    allowed = limiter.check("key_c", "owner_c", Limit(100, 60), budget, estimate=10)
    assert allowed.allowed
    for key in _budget_keys(allowed):
        assert int(redis_client.get(key)) == 100
        assert redis_client.pttl(key) > 0


def test_token_budget_refuses_a_reservation_it_cannot_hold(redis_client: redis.Redis) -> None:
    """Over the minute budget: refused until the next minute, and not counted as a request."""
    limiter = RateLimiter(lambda: redis_client)
    budget = Budget(per_minute=150)
    first = limiter.check("key_b", "owner_b", Limit(10, 60), budget, estimate=100)
    second = limiter.check("key_b", "owner_b", Limit(10, 60), budget, estimate=100)
    assert first.allowed
    assert not second.allowed
    assert second.outcome == "budget"
    assert 0 < second.retry_after_s <= 60
    # The refused request left the rate limit as it was: 8 of 10 still free after a third.
    third = limiter.check("key_b", "owner_b", Limit(10, 60))
    assert third.remaining == 8


@pytest.mark.parametrize("mode", ["fail-open", "fail-closed"])
def test_a_redis_refusing_writes_counts_as_unavailable(
    container: Container, base_settings: Settings, private_valkey: EmbeddedValkey, mode: str
) -> None:
    """A Redis answering READONLY (a demoted primary) gets the chosen mode, never a 500."""
    gateway = _gateway(
        container, base_settings, redis_url=private_valkey.url, rate_limit_failure_mode=mode
    )
    previous = set_container(gateway)
    try:
        key = make_key(gateway, "user")
        # Replica of a primary that does not exist: reads work, every write is refused.
        gateway.redis.replicaof("127.0.0.1", free_port())
        answer = _get(key)
        if mode == "fail-open":
            assert answer.status_code == 200
            assert not any(h in answer.headers for h in RATE_HEADERS)
        else:
            assert answer.status_code == 503
            assert "Retry-After" in answer.headers
    finally:
        set_container(previous)
        gateway.redis.close()


def test_a_redis_refusing_writes_does_not_turn_a_mistral_failure_into_a_500(
    container: Container, base_settings: Settings, private_valkey: EmbeddedValkey
) -> None:
    """With Redis read-only, a failing Mistral call is still 502: the breaker falls back locally."""
    with StandIn() as standin:
        gateway = _gateway(
            container,
            base_settings,
            redis_url=private_valkey.url,
            mistral_server_url=standin.url,
            mistral_max_retries=0,
        )
        previous = set_container(gateway)
        try:
            key = make_key(gateway, "user")
            gateway.redis.replicaof("127.0.0.1", free_port())
            standin.inject("status=500", count=1)
            answer = client("start").post(
                "/v1/conversations",
                json={"model": "mistral-small-latest", "inputs": "hi"},
                headers=bearer(key),
            )
        finally:
            set_container(previous)
            gateway.redis.close()
    assert answer.status_code == 502, answer.get_data(as_text=True)

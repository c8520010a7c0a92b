"""The circuit breaker, shared by two gateway processes through one Redis."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import httpx2
import pytest

from devstack.servers import free_port, stop_process
from devstack.stack import StackInfo, function_command
from devstack.standin import StandIn
from shared.tenancy.keys import NewKey
from tests.support import ROOT, error_code

COOLDOWN_S = 2


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def two_starts(stack: StackInfo, standin: StandIn) -> Iterator[list[str]]:
    """Two start-function processes, as two Cloud Run instances, on a Redis db of their own."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/3",
        "MISTRAL_SERVER_URL": standin.url,
        "MISTRAL_API_KEY": "x",
        "BREAKER_FAILURE_THRESHOLD": "3",
        "BREAKER_COOLDOWN_S": str(COOLDOWN_S),
        "RATE_LIMIT_REQUESTS": "10000",
        "THREADS": "4",
    }
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        procs.append(
            subprocess.Popen(
                function_command("start", port),
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            _wait(url + "/gateway/v1/health/start")
        yield urls
    finally:
        for proc in procs:
            stop_process(proc, 15)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became healthy")


def _start(url: str, key: NewKey) -> httpx2.Response:
    return httpx2.post(
        url + "/v1/conversations",
        json={"inputs": "x", "model": "m"},
        headers={"Authorization": f"Bearer {key.secret}"},
        timeout=10,
    )


def test_circuit_opens_for_both_half_opens_and_closes(
    two_starts: list[str], standin: StandIn, user_key: NewKey
) -> None:
    """Failures on one instance open the circuit for both; after the cool-down one trial
    goes through, and its success closes the circuit everywhere."""
    first, second = two_starts
    standin.inject("status=503", count=100, operation="conversations.start")
    statuses = [_start(first, user_key).status_code for _ in range(3)]
    assert statuses == [502, 502, 502]
    opened = _start(first, user_key)
    assert opened.status_code == 503
    assert error_code(opened.json()) == "circuit_open"
    assert int(opened.headers["Retry-After"]) >= 1
    other = _start(second, user_key)
    assert other.status_code == 503
    assert error_code(other.json()) == "circuit_open"
    assert standin.calls()["conversations.start"] == 3

    standin.clear_faults()
    time.sleep(COOLDOWN_S + 0.5)
    assert _start(second, user_key).status_code == 200  # the half-open trial
    assert _start(first, user_key).status_code == 200
    assert standin.calls()["conversations.start"] == 5

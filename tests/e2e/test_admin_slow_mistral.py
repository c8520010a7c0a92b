"""A slow Mistral holds no database connection: the admin instance keeps answering."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from devstack.servers import free_port, stop_process
from devstack.stack import StackInfo, function_command
from devstack.standin import StandIn
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key
from tests.support import ROOT

# The deployed admin function's instance: 80 request threads (its Cloud Run concurrency,
# terraform/environments/*/variables.tf) over 5 pooled connections (db_pool_size's
# default in terraform/modules/gateway/variables.tf).
DEPLOYED_THREADS = 80
DEPLOYED_POOL = 5
WRITES = 6
SLOW_MS = 4_000


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def admin_url(stack: StackInfo, standin: StandIn) -> Iterator[str]:
    """One admin-function process, sized as deployed, in front of its own stand-in."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/4",
        "MISTRAL_SERVER_URL": standin.url,
        "MISTRAL_API_KEY": "x",
        "RATE_LIMIT_REQUESTS": "10000",
        "THREADS": str(DEPLOYED_THREADS),
        "DB_POOL_SIZE": str(DEPLOYED_POOL),
    }
    port = free_port()
    proc = subprocess.Popen(
        function_command("admin", port),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx2.get(url + "/gateway/v1/health/admin", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the admin function never became healthy")
        yield url
    finally:
        stop_process(proc, 15)


@pytest.fixture(scope="module")
def admin(stack_container: Container) -> NewKey:
    with stack_container.pool.transaction() as conn:
        return create_key(conn, owner_id="slow-mistral", name="slow admin", role="admin")


def _waiting(container: Container) -> int:
    """Writes waiting on Mistral right now (their in-progress records)."""
    with container.pool.connection() as conn:
        row = conn.one("SELECT count(*) AS n FROM writes_in_progress WHERE lease_until > now()")
    return int(row["n"]) if row else 0


def test_six_agent_writes_waiting_on_mistral_leave_keys_usage_and_health_answering(
    admin_url: str, admin: NewKey, standin: StandIn, stack_container: Container
) -> None:
    """Six agent updates wait on a slow Mistral (more writes than the pool has connections);
    meanwhile keys, usage and health answer 200 from the same instance; then all six land."""
    headers = {"Authorization": f"Bearer {admin.secret}"}
    with httpx2.Client(base_url=admin_url, headers=headers, timeout=30) as http:
        ids = []
        for i in range(WRITES):
            made = http.post("/v1/agents", json={"model": "mistral-small-latest", "name": f"s{i}"})
            assert made.status_code == 200, made.text
            ids.append(made.json()["id"])
        standin.inject(f"latency={SLOW_MS}", count=WRITES, operation="agents.update")

        def update(agent_id: str) -> int:
            answer = http.patch(f"/v1/agents/{agent_id}", json={"instructions": "slow"})
            return answer.status_code

        with ThreadPoolExecutor(WRITES) as pool:
            writes = [pool.submit(update, agent_id) for agent_id in ids]
            while _waiting(stack_container) < WRITES and not any(w.done() for w in writes):
                threading.Event().wait(0.05)
            assert _waiting(stack_container) == WRITES
            reads = {
                path: http.get(path).status_code
                for path in ("/gateway/v1/keys", "/gateway/v1/usage", "/gateway/v1/health/admin")
            }
            # The reads were answered while all six were still waiting on Mistral.
            still_waiting = _waiting(stack_container)
            statuses = [w.result() for w in writes]
    assert reads == {
        "/gateway/v1/keys": 200,
        "/gateway/v1/usage": 200,
        "/gateway/v1/health/admin": 200,
    }
    assert still_waiting == WRITES
    assert statuses == [200] * WRITES
    assert _waiting(stack_container) == 0

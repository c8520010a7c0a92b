"""The batch function served by a real functions-framework process, as Cloud Run runs it.

Each server is `python -m functions_framework --target ... --source functions/batch/main.py`
in its own process group, over the tests' PostgreSQL and Valkey, with the Mistral stand-in
(in this process) counting every upstream call. The kill test SIGKILLs the whole group in
the middle of a batch and redelivers the message to a fresh process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.standin import StandIn
from shared import batch
from shared.config import Settings
from shared.container import Container
from tests.support import ROOT, make_key

MODEL = "mistral-small-latest"
OWNER = "tenant-served"
EVENTS = "/gateway/v1/batches/events"
SOURCE = ROOT / "functions" / "batch" / "main.py"
CE_HEADERS = {
    "ce-type": batch.MESSAGE_PUBLISHED,
    "ce-source": "//pubsub.googleapis.com/projects/p/topics/gateway-batches",
    "ce-specversion": "1.0",
}


def items(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"row-{i}", "model": MODEL, "inputs": f"q{i}"} for i in range(n)]


def push_body(document: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "message": {
            "data": base64.b64encode(json.dumps(document).encode()).decode(),
            "messageId": message_id,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": "projects/p/subscriptions/gateway-batches-push",
    }


def send(url: str, body: bytes, headers: dict[str, str], timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_push(base: str, document: dict[str, Any], message_id: str) -> tuple[int, Any]:
    body = json.dumps(push_body(document, message_id)).encode()
    status, raw = send(base + EVENTS, body, {"Content-Type": "application/json"})
    return status, json.loads(raw) if raw.startswith(b"{") else raw


def item_statuses(container: Container, batch_id: str) -> list[str]:
    with container.pool.connection() as conn:
        return [
            r[0]
            for r in conn.run(
                "SELECT status FROM batch_items WHERE batch_id = :b ORDER BY idx", b=batch_id
            )
        ]


class Served:
    """One functions-framework process serving the batch function on a free port."""

    def __init__(self, target: str, env: dict[str, str], log: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target",
                target,
                "--source",
                str(SOURCE),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # gunicorn forks its worker: the kill must reach the whole group.
            start_new_session=True,
        )
        self._wait_ready(log)

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"functions-framework exited: {log.read_text()[-2000:]}")
            try:
                # Any HTTP answer (the CloudEvent app has no GET route) means it serves.
                urllib.request.urlopen(self.url + "/", timeout=1)  # noqa: S310 - loopback
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("functions-framework did not start in 30 s")

    def kill(self) -> None:
        """SIGKILL the server and its worker, mid-request: no cleanup runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._log.close()


@pytest.fixture(scope="module")
def server_env(base_settings: Settings, standin: StandIn) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    env.update(
        ENVIRONMENT="test",
        LOG_LEVEL="WARNING",
        DATABASE_URL=base_settings.database_url,
        REDIS_URL=base_settings.redis_url,
        MISTRAL_SERVER_URL=standin.url,
        MISTRAL_API_KEY="x",
        MISTRAL_TIMEOUT_MS="10000",
        RATE_LIMIT_REQUESTS="100000",
        BREAKER_FAILURE_THRESHOLD="1000",
        BATCH_CONCURRENCY="4",
        BATCH_LEASE_S="2",
        THREADS="8",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture(scope="module")
def handle(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The HTTP entry point (push subscription), served."""
    served = Served("handle", server_env, tmp_path_factory.mktemp("ff") / "handle.log")
    yield served
    served.stop()


@pytest.fixture(scope="module")
def handle_event(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The CloudEvent entry point (an Eventarc trigger), served."""
    served = Served("handle_event", server_env, tmp_path_factory.mktemp("ff") / "event.log")
    yield served
    served.stop()


@pytest.fixture
def owner(container: Container, standin: StandIn) -> str:
    standin.reset()
    make_key(container, "user", owner=OWNER)
    return OWNER


@pytest.mark.parametrize("mode", ["push", "binary", "structured"])
def test_http_entry_point_takes_push_bodies_and_cloud_events(
    container: Container, standin: StandIn, handle: Served, owner: str, mode: str
) -> None:
    """A push body, a binary CloudEvent and a structured one each run and store the batch."""
    envelope = push_body({"batch_id": f"b-{mode}", "owner": owner, "items": items(3)}, "900")
    headers = {"Content-Type": "application/json"}
    payload: Any = envelope
    if mode == "binary":
        headers.update(CE_HEADERS, **{"ce-id": "900"})
    elif mode == "structured":
        headers = {"Content-Type": "application/cloudevents+json"}
        payload = {**{k.removeprefix("ce-"): v for k, v in CE_HEADERS.items()}, "id": "900"}
        payload["data"] = envelope
    status, body = send(handle.url + EVENTS, json.dumps(payload).encode(), headers)
    assert status == 200, body
    assert json.loads(body)["status"] == "succeeded"
    assert item_statuses(container, f"b-{mode}") == ["succeeded"] * 3
    assert standin.calls()["conversations.start"] == 3


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloud_event_entry_point_takes_binary_and_structured_events(
    container: Container, standin: StandIn, handle_event: Served, owner: str, mode: str
) -> None:
    """The Eventarc entry point acknowledges (200) once the batch's items are stored."""
    envelope = push_body({"batch_id": f"e-{mode}", "owner": owner, "items": items(2)}, "901")
    if mode == "binary":
        body = json.dumps(envelope).encode()
        headers = {"Content-Type": "application/json", **CE_HEADERS, "ce-id": "901"}
    else:
        event = {k.removeprefix("ce-"): v for k, v in CE_HEADERS.items()}
        body = json.dumps({**event, "id": "901", "data": envelope}).encode()
        headers = {"Content-Type": "application/cloudevents+json"}
    status, answer = send(handle_event.url + "/", body, headers)
    assert status == 200, answer
    assert item_statuses(container, f"e-{mode}") == ["succeeded"] * 2
    assert standin.calls()["conversations.start"] == 2


def test_same_message_twice_in_a_row_calls_mistral_once_per_item(
    container: Container, standin: StandIn, handle: Served, owner: str
) -> None:
    """A redelivered message acknowledges at once: every item is finished, nothing reruns."""
    document = {"owner": owner, "items": items(5)}
    first = post_push(handle.url, document, "910")
    second = post_push(handle.url, document, "910")
    assert first[0] == second[0] == 200
    assert first[1]["batch_id"] == second[1]["batch_id"] == "msg_910"
    assert second[1]["counts"]["succeeded"] == 5
    assert standin.calls()["conversations.start"] == 5


def test_same_message_twice_at_once_calls_mistral_once_per_item(
    container: Container, standin: StandIn, handle: Served, owner: str
) -> None:
    """Two deliveries of one message at the same time share its items: one call per item,
    and both acknowledge only once every item is finished."""
    standin.inject("latency=300", count=12, operation="conversations.start")
    document = {"owner": owner, "items": items(12)}
    answers: list[tuple[int, Any]] = []

    def deliver() -> None:
        answers.append(post_push(handle.url, document, "920"))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a[0] for a in answers] == [200, 200]
    assert [a[1]["counts"]["succeeded"] for a in answers] == [12, 12]
    assert standin.calls()["conversations.start"] == 12
    assert item_statuses(container, "msg_920") == ["succeeded"] * 12


def test_killed_mid_batch_then_redelivered_runs_every_item_exactly_once(
    container: Container,
    standin: StandIn,
    server_env: dict[str, str],
    owner: str,
    tmp_path: Path,
) -> None:
    """SIGKILL with items in flight at Mistral, then a redelivery to a fresh process: every
    item ends succeeded, with one conversation and one upstream start each."""
    standin.inject("latency=1000", count=100, operation="conversations.start")
    document = {"batch_id": "b-kill", "owner": owner, "items": items(16)}
    first = Served("handle", server_env, tmp_path / "first.log")
    try:

        def doomed_delivery() -> None:
            # The connection drops when the server dies: Pub/Sub would count that a nack.
            with contextlib.suppress(OSError):
                post_push(first.url, document, "930")

        delivery = threading.Thread(target=doomed_delivery, daemon=True)
        delivery.start()
        deadline = time.monotonic() + 20
        while item_statuses(container, "b-kill").count("succeeded") < 4:
            assert time.monotonic() < deadline, "the first wave never finished"
            time.sleep(0.05)
        time.sleep(0.3)  # the second wave is now waiting on Mistral
        first.kill()
    finally:
        first.stop()
    at_kill = item_statuses(container, "b-kill")
    assert "running" in at_kill, at_kill
    assert "pending" in at_kill, at_kill
    second = Served("handle", server_env, tmp_path / "second.log")
    try:
        status, body = post_push(second.url, document, "930")
    finally:
        second.stop()
    assert status == 200, body
    assert body["status"] == "succeeded"
    with container.pool.connection() as conn:
        found = conn.all(
            "SELECT status, conversation_id, attempts, result FROM batch_items"
            " WHERE batch_id = 'b-kill' ORDER BY idx"
        )
        stored = conn.run("SELECT count(*) FROM conversations")[0][0]
    assert [r["status"] for r in found] == ["succeeded"] * 16
    assert len({r["conversation_id"] for r in found}) == 16
    assert stored == 16
    assert standin.calls()["conversations.start"] == 16
    # The items in flight at the kill were taken over and reconciled, not started again.
    taken_over = [r for r in found if r["attempts"] == 2]
    assert taken_over
    assert all(r["result"].get("gateway_reconciled") for r in taken_over)

"""A cold instance on a slow network: PostgreSQL and Redis connect only after a while.

On Cloud Run, Direct VPC egress may take a minute or more to connect when an
instance starts (Google's documentation). Here both servers sit behind relays
(tests/netrelay.py) that accept connections but pass nothing until opened.
Within DB_CONNECT_TIMEOUT_MS / REDIS_CONNECT_TIMEOUT_MS the first requests wait
and are answered, through both servers; past them they get the documented 503
service_unavailable with Retry-After, and the health route says 503 until the
instance can serve, then 200, with nothing left broken by the failed attempts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.servers import EmbeddedPostgres, EmbeddedValkey
from shared.config import Settings
from shared.container import Container, set_container
from shared.http import routes
from tests.netrelay import Relay
from tests.support import bearer, client, error_code, make_key

PATH = "/v1/conversations"


@pytest.fixture
def late_network(
    container: Container, postgres: EmbeddedPostgres, valkey: EmbeddedValkey
) -> Iterator[Any]:
    """Call with the connect timeouts (ms) and what is held: a gateway and its two relays."""
    made: list[tuple[Container, list[Relay]]] = []

    def build(
        connect_timeout_ms: int,
        held: tuple[str, ...] = ("database", "redis"),
        opens_after_s: float | None = None,
    ) -> tuple[Container, list[Relay]]:
        relays = [
            Relay(port, held=True, opens_after_s=opens_after_s).start()
            if name in held
            else Relay(port).start()
            for name, port in (("database", postgres.port), ("redis", valkey.port))
        ]
        database_url = container.settings.database_url.replace(
            f"127.0.0.1:{postgres.port}/", f"127.0.0.1:{relays[0].port}/"
        )
        assert database_url != container.settings.database_url
        settings = Settings.from_env(
            {
                "ENVIRONMENT": "test",
                "DATABASE_URL": database_url,
                "REDIS_URL": f"redis://127.0.0.1:{relays[1].port}/0",
                "DB_CONNECT_TIMEOUT_MS": str(connect_timeout_ms),
                "REDIS_CONNECT_TIMEOUT_MS": str(connect_timeout_ms),
                "MISTRAL_SERVER_URL": "http://127.0.0.1:9",
                "MISTRAL_API_KEY": "unused",
            }
        )
        gateway = Container(settings)
        made.append((gateway, relays))
        return gateway, relays

    previous = set_container(None)
    yield build
    set_container(previous)
    for gateway, relays in made:
        for relay in relays:
            relay.stop()
        gateway.close()


@pytest.mark.parametrize("held", [("database",), ("redis",), ("database", "redis")])
def test_first_request_waits_for_a_late_network_and_is_answered(
    container: Container, late_network: Any, held: tuple[str, ...]
) -> None:
    """Each held server connects 2.5 s after its first attempt, within the timeouts: 200."""
    key = make_key(container, "user")
    gateway, relays = late_network(10_000, held, opens_after_s=2.5)
    set_container(gateway)
    started = time.monotonic()
    answer = client("history").get(PATH, headers=bearer(key))
    waited = time.monotonic() - started
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert waited >= 2.5  # it did wait for the held network
    assert all(relay.accepted >= 1 for relay in relays)
    # The limiter counted the request in Redis through the relay: not bypassed (fail-open).
    assert answer.headers["RateLimit-Remaining"]
    assert container.redis.dbsize() > 0
    health = client("history").get(routes.health_path("history"))
    assert health.status_code == 200
    assert health.get_json()["status"] == "ok"


def test_network_later_than_the_timeouts_is_a_503_then_healthy_once_connected(
    container: Container, late_network: Any
) -> None:
    """Past the connect timeouts: 503 + Retry-After, unhealthy; once connected, 200, healthy."""
    key = make_key(container, "user")
    gateway, relays = late_network(300)
    set_container(gateway)

    answer = client("history").get(PATH, headers=bearer(key))
    assert answer.status_code == 503
    assert error_code(answer.get_json()) == "service_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1

    health = client("history").get(routes.health_path("history"))
    body = health.get_json()
    assert health.status_code == 503
    assert int(health.headers["Retry-After"]) >= 1
    assert (body["status"], body["database"]["ok"], body["redis"]["ok"]) == (
        "unavailable",
        False,
        False,
    )

    for relay in relays:
        relay.open()
    health = client("history").get(routes.health_path("history"))
    assert health.status_code == 200, health.get_json()
    answer = client("history").get(PATH, headers=bearer(key))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["RateLimit-Remaining"]


@pytest.mark.parametrize("function", routes.FUNCTIONS)
def test_every_function_is_unhealthy_until_it_can_reach_both_servers(
    late_network: Any, function: str
) -> None:
    """Each function's health route is 503 while the network is held, 200 once it is open."""
    gateway, relays = late_network(200)
    set_container(gateway)
    assert client(function).get(routes.health_path(function)).status_code == 503
    for relay in relays:
        relay.open()
    assert client(function).get(routes.health_path(function)).status_code == 200

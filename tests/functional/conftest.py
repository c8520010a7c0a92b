"""Fixtures every functional test module may use: a Mistral stand-in over real HTTP, a
Mistral client for it, a gateway container wired to both, and a Valkey of a test's own
(to stop or freeze). A module that needs another shape (settings, faults) defines its own
fixture of the same name."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator

import pytest

from devstack.servers import EmbeddedValkey
from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.mistral import MistralClient, build_client


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    """One stand-in per test module, on its own loopback port."""
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def mistral(base_settings: Settings, standin: StandIn) -> MistralClient:
    return build_client(dataclasses.replace(base_settings, mistral_server_url=standin.url), None)


@pytest.fixture
def private_valkey() -> Iterator[EmbeddedValkey]:
    """A Valkey of this test's own, so stopping it disturbs no other test."""
    server = EmbeddedValkey().start()
    try:
        yield server
    finally:
        if server.proc is not None:
            # A frozen server must be woken before it can be told to stop.
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def gateway(
    container: Container, standin: StandIn, base_settings: Settings, mistral: MistralClient
) -> Iterator[Container]:
    """The gateway's container talking to a fresh stand-in, over empty tables."""
    standin.reset()
    settings = dataclasses.replace(base_settings, mistral_server_url=standin.url)
    gateway = Container(
        settings, pool=container.pool, redis_client=container.redis, mistral=mistral
    )
    previous = set_container(gateway)
    yield gateway
    set_container(previous)

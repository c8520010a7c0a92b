"""The Mistral transport gives each request thread one SDK instance, `per_pool` threads each."""

from __future__ import annotations

import threading
from typing import Any

from shared.config import Settings
from shared.mistral import SdkTransport, build_sdk

_SETTINGS = Settings(mistral_api_key="test-key", mistral_server_url="http://127.0.0.1:9")


def _pools_of(transport: SdkTransport, threads: int) -> list[Any]:
    seen: list[Any] = [None] * threads
    gate = threading.Barrier(threads)

    def work(i: int) -> None:
        gate.wait()
        seen[i] = transport._pool()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return seen


def test_threads_beyond_a_pool_get_another_sdk_instance() -> None:
    """Five threads, two per pool: three SDK instances, none serving more than two threads."""
    built: list[Any] = []

    def more() -> Any:
        sdk = build_sdk(_SETTINGS, 2)
        built.append(sdk)
        return sdk

    transport = SdkTransport(build_sdk(_SETTINGS, 2), more=more, per_pool=2, pools=3)
    pools = _pools_of(transport, 5)
    assert len(built) == 2
    assert max(sum(p is q for p in pools) for q in pools) == 2
    assert len({id(p) for p in pools}) == 3


def test_a_thread_keeps_its_sdk_instance() -> None:
    """Every call from one thread goes through the same instance (and connection pool)."""
    transport = SdkTransport(
        build_sdk(_SETTINGS, 1), more=lambda: build_sdk(_SETTINGS, 1), per_pool=1
    )
    assert transport._pool() is transport._pool()


def test_one_sdk_instance_when_no_more_are_allowed() -> None:
    """Without `more`, every thread shares the one instance, as before."""
    transport = SdkTransport(build_sdk(_SETTINGS, 4))
    assert len({id(p) for p in _pools_of(transport, 4)}) == 1

"""A duplicate of an idempotent request in progress waits for it, reading the record less
and less often, and replays its answer (real PostgreSQL)."""

from __future__ import annotations

import uuid

from shared.container import Container
from shared.limits.idempotency import Idempotency, StoredResponse, request_hash

DIGEST = request_hash("conversations.start", "/v1/conversations", {"inputs": "hi"})
ANSWER = StoredResponse(200, {"Content-Type": "application/json"}, b'{"ok":true}')


def test_a_duplicate_waits_twice_as_long_each_time_then_replays(container: Container) -> None:
    """Waits of 50 ms doubling to a 1 s cap; the holder's answer is replayed when it lands."""
    owner, key = "tenant-wait", f"k-{uuid.uuid4()}"
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 7:  # the holder finishes while the duplicate waits
            holder.complete(owner, key, ANSWER)

    holder = Idempotency(lambda: container.pool, ttl_s=60, lock_s=60)
    duplicate = Idempotency(lambda: container.pool, ttl_s=60, lock_s=60, sleep=sleep)
    assert holder.claim(owner, key, "conversations.start", DIGEST).replay is None
    claim = duplicate.claim(owner, key, "conversations.start", DIGEST)
    assert claim.replay == ANSWER
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_duplicate_takes_over_once_the_holders_lock_runs_out(container: Container) -> None:
    """A holder that died does not wedge the key: the duplicate runs the request itself, and
    its answer is the one replayed after."""
    owner, key = "tenant-wait", f"k-{uuid.uuid4()}"
    holder = Idempotency(lambda: container.pool, ttl_s=60, lock_s=0.2)
    duplicate = Idempotency(lambda: container.pool, ttl_s=60, lock_s=30)
    assert holder.claim(owner, key, "conversations.start", DIGEST).replay is None
    assert duplicate.claim(owner, key, "conversations.start", DIGEST).replay is None
    duplicate.complete(owner, key, ANSWER)
    assert duplicate.claim(owner, key, "conversations.start", DIGEST).replay == ANSWER

"""The pool's slots: first come, first served, never more holders than slots."""

from __future__ import annotations

import threading
import time

from shared.db._pool import _FairSlots


def _wait_for_waiters(slots: _FairSlots, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(slots._waiters) < n:
        assert time.monotonic() < deadline, "waiters never queued"
        time.sleep(0.001)


def test_a_freed_slot_goes_to_the_longest_waiter_not_a_newcomer() -> None:
    slots = _FairSlots(1)
    assert slots.acquire(timeout=0)
    order: list[str] = []
    threads = []
    for name in ("first", "second", "third"):

        def wait(name: str = name) -> None:
            assert slots.acquire(timeout=5)
            order.append(name)
            time.sleep(0.01)
            slots.release()

        thread = threading.Thread(target=wait)
        thread.start()
        threads.append(thread)
        _wait_for_waiters(slots, len(threads))
    slots.release()
    # Handed straight to "first": a caller arriving now finds no free slot to take.
    assert not slots.acquire(timeout=0.001)
    for thread in threads:
        thread.join()
    assert order == ["first", "second", "third"]
    assert slots.acquire(timeout=0)


def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    slots = _FairSlots(1)
    assert slots.acquire(timeout=0)
    started = time.monotonic()
    assert not slots.acquire(timeout=0.05)
    assert 0.04 < time.monotonic() - started < 1
    assert not slots._waiters
    slots.release()
    assert slots.acquire(timeout=0)


def test_no_slot_is_lost_or_doubled_under_contention() -> None:
    """Many threads acquiring with short timeouts (some time out as a slot is handed to
    them): never more holders than slots, and every slot is free at the end."""
    size = 3
    slots = _FairSlots(size)
    holders = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal holders, most
        for _ in range(300):
            if not slots.acquire(timeout=0.0005):
                continue
            with lock:
                holders += 1
                most = max(most, holders)
            with lock:
                holders -= 1
            slots.release()

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most <= size
    assert not slots._waiters
    assert all(slots.acquire(timeout=0) for _ in range(size))
    assert not slots.acquire(timeout=0)


def test_a_slot_handed_over_as_the_wait_times_out_belongs_to_the_waiter() -> None:
    """The release that comes between a waiter's timeout and its leaving the queue gives
    it the slot: it must report success, or that slot is lost for good."""
    slots = _FairSlots(1)
    assert slots.acquire(timeout=0)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire(timeout=0.05)))
    with slots._lock:  # the waiter times out, then blocks here before leaving the queue
        waiter.start()
        deadline = time.monotonic() + 5
        while not slots._waiters:
            assert time.monotonic() < deadline
            slots._lock.release()
            time.sleep(0.001)
            slots._lock.acquire()
        time.sleep(0.2)
        slots._waiters.popleft().release()  # what release() does, at that very moment
    waiter.join()
    assert got == [True]
    slots.release()
    assert slots.acquire(timeout=0)

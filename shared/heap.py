"""`settle_heap`: what a process builds once is put out of the garbage collector's reach."""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]

_settled: set[str] = set()


def settle_heap(what: str) -> None:
    """Put every object alive now out of the garbage collector's reach (`gc.freeze()`),
    the first time `what` (a service, the log handler) is built in this process.

    What exists once a process-lifetime thing is built lives as long as the process, and
    a full collection would otherwise walk all of it again and again, pausing every request
    thread (most objects come from the SDK's and google-cloud-logging's imports; figures in
    bench/RESULTS.md, note 6). Objects of requests in flight at that moment are frozen
    too, once per kind of service: a bounded cost.
    """
    if what not in _settled:
        _settled.add(what)
        gc.freeze()

"""settle_heap: what a process builds once is frozen out of the collector's walks, once."""

from __future__ import annotations

import gc

from shared.container import settle_heap


def test_each_kind_of_thing_freezes_the_heap_once() -> None:
    gc.unfreeze()
    kept_lists = [[i] for i in range(1000)]  # containers: tracked by the collector
    settle_heap("test thing")
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept_lists)
    more = [[i] for i in range(1000)]
    # The same kind again: nothing new is frozen (the count only drops, as frozen
    # objects other code lets go of are freed).
    settle_heap("test thing")
    assert gc.get_freeze_count() <= frozen
    before = gc.get_freeze_count()
    settle_heap("another test thing")
    assert gc.get_freeze_count() > before + len(more) // 2
    gc.unfreeze()
    del kept_lists, more

"""`capture_logs`: the structured lines a block emitted, for tests to assert on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.observability._state import STATE

__all__ = ["capture_logs"]


@contextmanager
def capture_logs(level: int | str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Collect, as parsed dicts, exactly the JSON objects written to stdout inside the block.

    The capturing handler is the stdout handler's class (same filters, same format,
    same redaction), attached next to it on the root logger. It sees what the root
    level lets through; `level` lowers or raises that for the block only.
    """
    from shared.observability._handler import CaptureHandler

    sink: list[dict[str, Any]] = []
    handler = CaptureHandler(sink, project_id=STATE.project or None)
    root = logging.getLogger()
    previous = root.level
    if level is not None:
        root.setLevel(level)
    root.addHandler(handler)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        if level is not None:
            root.setLevel(previous)

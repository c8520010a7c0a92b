"""How far a stream the caller left is read on.

Mistral goes on producing (and billing) a stream whoever left, and its usage comes in
its last events: the gateway reads on, within ABANDONED_STREAM_READ_S and
ABANDONED_STREAM_READ_BYTES, to charge what Mistral reports. A turn's stream and a
pass-through stream are read on alike; each watches for its own end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from shared.config import Settings
from shared.errors import GatewayError

__all__ = ["StreamWatcher", "read_abandoned"]

log = logging.getLogger(__name__)


class StreamWatcher(Protocol):
    """Reads a relayed stream's events for its usage and its end (`done`)."""

    done: bool

    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> None: ...


def read_abandoned(
    chunks: Iterator[bytes],
    watcher: StreamWatcher,
    settings: Settings,
    keep: Callable[[bytes], None] | None = None,
) -> bool:
    """Read on a stream the caller left, each chunk fed to `watcher` (then to `keep`),
    until its end or the settings' bounds; True if it ended."""
    deadline = time.monotonic() + settings.abandoned_stream_read_s
    left = settings.abandoned_stream_read_bytes
    try:
        for chunk in chunks:
            watcher.feed(chunk)
            if keep is not None:
                keep(chunk)
            left -= len(chunk)
            if watcher.done or left <= 0 or time.monotonic() > deadline:
                break
        else:
            watcher.close()
    except GatewayError as exc:
        log.warning("abandoned upstream stream broke: %s", exc.message)
    return watcher.done

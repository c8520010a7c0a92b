"""How many bytes of large request bodies one instance holds at once.

A pass-through call carrying media inline (an OCR document, audio to transcribe, images
in a chat) may be up to MAX_MEDIA_BODY_BYTES, read whole before it is relayed. With a
hundred and fifty requests to an instance, a few dozen such bodies at once would pass
its memory; so each body above MAX_BODY_BYTES takes its size from this budget
(MEDIA_BODY_BUDGET_BYTES) before it is read, and gives it back once Mistral has it. A
body the budget cannot take now is refused at once (503 with Retry-After: another
instance, or this one a moment later, can take it), not queued: a queue of large
bodies would hold their connections and the caller's time.
"""

from __future__ import annotations

import threading

__all__ = ["BodyBudget"]


class BodyBudget:
    """At most `limit` bytes taken at once, by any number of threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def take(self, size: int) -> bool:
        """Take `size` bytes if they fit now; False (nothing taken) if not."""
        with self._lock:
            if self._held + size > self.limit:
                return False
            self._held += size
            return True

    def give(self, size: int) -> None:
        """Give back bytes `take` took."""
        with self._lock:
            self._held = max(0, self._held - size)

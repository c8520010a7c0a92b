"""The stand-in's conversations and agents kept in a JSON file across restarts (`make run`).

Mistral keeps what it was given; a stand-in that forgot everything on restart would leave the
gateway's database listing conversations and agents that then answer 404. The store is
written whole, atomically (a temporary file renamed over the old one), at most every
`interval_s` while it changes and once more on a clean stop; a killed stand-in loses at most
the last interval. Rebuilding from the gateway's database instead would couple the stand-in
to the gateway's schema and could not restore what the gateway never stores (agent versions
and aliases, conversations made on the stand-in directly).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from ._store import Store

__all__ = ["Persister"]

log = logging.getLogger(__name__)


class Persister:
    """Loads `path` into `store` on start; writes the store back while it runs and on stop."""

    def __init__(self, store: Store, path: Path, interval_s: float = 1.0) -> None:
        self.store = store
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved = -1

    def start(self) -> None:
        if self.path.exists():
            self.store.restore(json.loads(self.path.read_text()))
        self._saved = self.store.changes
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="standin-persist", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.save()

    def save(self) -> None:
        """Write the store if it changed since the last write."""
        changes = self.store.changes
        if changes == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.store.snapshot(), separators=(",", ":")))
        os.replace(temporary, self.path)
        self._saved = changes

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.save()
            except OSError as exc:
                log.warning("stand-in state not saved: %s", exc)

"""Steady background requests, so that a fault is always met by traffic in flight.

    with Pressure(stack, lambda c: c.get("/v1/conversations", headers=h)) as load:
        ...break something...
    load.outcomes   # every answer: status, seconds, Retry-After, when it was sent

Each thread has its own HTTP client and sends one request every `interval_s`. A
request that fails at the transport (the connection refused or reset) is recorded
with status 0, so a test can tell "answered 503" from "not answered at all".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import httpx2

__all__ = ["Outcome", "Pressure"]

Request = Callable[[httpx2.Client], httpx2.Response]


@dataclass(frozen=True)
class Outcome:
    status: int  # 0: no HTTP answer at all
    seconds: float
    sent_at: float  # time.monotonic() when sent
    retry_after: str | None = None
    error_type: str | None = None


@dataclass
class Pressure:
    base_url: str
    request: Request
    threads: int = 3
    interval_s: float = 0.02
    timeout_s: float = 15
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Pressure:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"pressure-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout_s + 5)

    def _run(self) -> None:
        # Each worker sends at least one request, even when the test is over before the
        # thread first runs (a fast fault): an empty record would prove nothing.
        with httpx2.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while True:
                sent = time.monotonic()
                try:
                    answer = self.request(client)
                    kind = None
                    if answer.status_code >= 400:
                        try:
                            kind = answer.json().get("code")
                        except ValueError:
                            kind = "not-json"
                    outcome = Outcome(
                        answer.status_code,
                        time.monotonic() - sent,
                        sent,
                        answer.headers.get("Retry-After"),
                        kind,
                    )
                except httpx2.HTTPError as exc:
                    outcome = Outcome(0, time.monotonic() - sent, sent, None, type(exc).__name__)
                with self._lock:
                    self.outcomes.append(outcome)
                if self._stop.wait(self.interval_s):
                    return

    def between(self, start: float, end: float) -> list[Outcome]:
        """The answers to requests sent in [start, end) (time.monotonic())."""
        with self._lock:
            return [o for o in self.outcomes if start <= o.sent_at < end]

    def statuses(self) -> list[int]:
        with self._lock:
            return [o.status for o in self.outcomes]

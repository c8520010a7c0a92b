"""Low-rate custom metrics for Cloud Monitoring: one point per batch, per circuit transition.

Per-request signals are log-based metrics (the access line); this writer is for
the few aggregates that are not. `record` only buffers; a background thread
calls `flush`, which respects Cloud Monitoring's write limits
(https://cloud.google.com/monitoring/quotas): at most one point per time series
every 5 seconds, at most 200 time series per `create_time_series` call, and
points of a series in increasing end-time order. Nothing here runs on the
request path but a dictionary assignment.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shared.observability import log_event

__all__ = ["MetricClient", "MonitoringWriter", "metric_service_client", "task_resource"]

# The platform minimum is 5 s per series; twice that leaves room for clock skew
# between this process and the API. https://cloud.google.com/monitoring/quotas
_MIN_INTERVAL_S = 10.0
# "Time series included in a request: 200". https://cloud.google.com/monitoring/quotas
_MAX_SERIES_PER_CALL = 200
# Beyond this many buffered series, new ones are dropped (and counted): a label with
# unbounded values is a bug, and memory should not pay for it.
_MAX_PENDING_SERIES = 10_000
# A point whose write failed is tried this many times in all, then dropped.
_MAX_ATTEMPTS = 3
_CALL_TIMEOUT_S = 30.0
# Series not written for this long are forgotten (their next point is simply "new").
_FORGET_AFTER_S = 3_600.0

_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class MetricClient(Protocol):
    """The one method of `monitoring_v3.MetricServiceClient` the writer calls."""

    def create_time_series(self, request: dict[str, Any], *, timeout: float) -> object: ...


def metric_service_client() -> MetricClient:
    """The real client; built on first flush, in the writer's thread, never at import."""
    from google.cloud import monitoring_v3

    return monitoring_v3.MetricServiceClient()


def task_resource(project_id: str, job: str | None = None) -> dict[str, Any]:
    """A `generic_task` resource unique to this process.

    Several Cloud Run instances writing the same series would break the one point per
    5 s rule between them; a per-process `task_id` keeps each instance's series apart
    (charts aggregate across it).
    """
    return {
        "type": "generic_task",
        "labels": {
            "project_id": project_id,
            "location": "global",
            "namespace": "mistral-agents-gateway",
            "job": job or os.environ.get("K_SERVICE", "local"),
            "task_id": uuid.uuid4().hex[:16],
        },
    }


@dataclass
class _Pending:
    value: float | int
    recorded_at: float  # wall-clock seconds
    attempts: int = 0


@dataclass
class _Written:
    at: float  # `clock()` when the point was sent
    end_time: float  # the point's wall-clock end time


class MonitoringWriter:
    """Buffers gauge points and writes them from a background thread.

    `record` keeps only the newest value of each series (metric type + labels); `flush`
    writes each buffered series whose last point is at least `min_interval_s` old and
    keeps the others for a later flush. Errors are logged once per run of failures and
    never raised.
    """

    def __init__(
        self,
        client_factory: Callable[[], MetricClient],
        project_id: str,
        *,
        min_interval_s: float = _MIN_INTERVAL_S,
        max_series_per_call: int = _MAX_SERIES_PER_CALL,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        flush_interval_s: float | None = None,
        resource: Mapping[str, Any] | None = None,
        autostart: bool = True,
    ) -> None:
        if not 0 < max_series_per_call <= _MAX_SERIES_PER_CALL:
            raise ValueError(f"max_series_per_call must be in 1..{_MAX_SERIES_PER_CALL}")
        self._factory = client_factory
        self._client: MetricClient | None = None
        self._project_id = project_id
        self._min_interval = min_interval_s
        self._max_series = max_series_per_call
        self._clock = clock
        self._wall_clock = wall_clock
        self._flush_interval = min_interval_s if flush_interval_s is None else flush_interval_s
        self._resource = dict(resource) if resource is not None else None
        self._autostart = autostart
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[_SeriesKey, _Pending] = {}
        self._written: dict[_SeriesKey, _Written] = {}
        self._dropped = 0
        self._failing = False
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, metric_type: str, labels: Mapping[str, str], value: float | int) -> None:
        """Buffer the series' newest value: no network, constant time, thread-safe."""
        key: _SeriesKey = (metric_type, tuple(sorted((k, str(v)) for k, v in labels.items())))
        point = _Pending(value, self._wall_clock())
        with self._lock:
            if key in self._pending or len(self._pending) < _MAX_PENDING_SERIES:
                self._pending[key] = point
            else:
                self._dropped += 1
        if self._autostart and self._thread is None:
            self.start()

    def start(self) -> None:
        """Start the flushing thread (once; `record` does it on first use)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="monitoring-writer", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and write what is due. Points still inside their interval
        cannot be written yet without breaking the rate rule, and are lost."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self.flush()

    def pending(self) -> int:
        """How many series have a point waiting."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write every due point; return how many were written. Never raises."""
        try:
            with self._flush_lock:
                return self._flush()
        except Exception as exc:  # the writer must never take its caller down
            self._failed(exc)
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            self.flush()

    def _flush(self) -> int:
        due = self._take_due()
        if self._dropped:
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            log_event("monitoring_series_dropped", "WARNING", series=dropped)
        written = 0
        for start in range(0, len(due), self._max_series):
            chunk = due[start : start + self._max_series]
            try:
                client = self._client
                if client is None:
                    client = self._client = self._factory()
                client.create_time_series(self._request(chunk), timeout=_CALL_TIMEOUT_S)
            except Exception as exc:
                self._failed(exc)
                self._retry(chunk)
            else:
                self._succeeded()
                written += len(chunk)
        return written

    def _take_due(self) -> list[tuple[_SeriesKey, _Pending, float]]:
        """Move the due points out of the buffer and stamp each with its end time."""
        now = self._clock()
        due = []
        with self._lock:
            for key, point in list(self._pending.items()):
                last = self._written.get(key)
                if last is not None and now - last.at < self._min_interval:
                    continue  # too soon for this series: keep the newest value for later
                end_time = point.recorded_at
                if last is not None:
                    # Strictly after the series' previous point, and far enough from it.
                    end_time = max(end_time, last.end_time + self._min_interval)
                del self._pending[key]
                # Marked as written even if the call fails: it may have partly succeeded.
                self._written[key] = _Written(now, end_time)
                due.append((key, point, end_time))
            for key, last in list(self._written.items()):
                if now - last.at > _FORGET_AFTER_S and key not in self._pending:
                    del self._written[key]
        return due

    def _retry(self, chunk: list[tuple[_SeriesKey, _Pending, float]]) -> None:
        with self._lock:
            for key, point, _ in chunk:
                if point.attempts + 1 < _MAX_ATTEMPTS:
                    # A newer value recorded meanwhile wins over the failed one.
                    self._pending.setdefault(
                        key, _Pending(point.value, point.recorded_at, point.attempts + 1)
                    )

    def _request(self, chunk: list[tuple[_SeriesKey, _Pending, float]]) -> dict[str, Any]:
        resource = self._resource
        if resource is None:
            resource = self._resource = task_resource(self._project_id)
        return {
            "name": f"projects/{self._project_id}",
            "time_series": [
                {
                    "metric": {"type": metric_type, "labels": dict(labels)},
                    "resource": resource,
                    "points": [
                        {
                            "interval": {"end_time": _timestamp(end_time)},
                            "value": _typed_value(point.value),
                        }
                    ],
                }
                for (metric_type, labels), point, end_time in chunk
            ],
        }

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            first = not self._failing
            self._failing = True
            self._failures += 1
        if first:
            log_event(
                "monitoring_write_failed",
                "WARNING",
                error_type=type(exc).__name__,
                error=str(exc)[:500],
            )

    def _succeeded(self) -> None:
        with self._lock:
            recovered, failures = self._failing, self._failures
            self._failing = False
            self._failures = 0
        if recovered:
            log_event("monitoring_write_recovered", failures=failures)


def _timestamp(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": int((seconds - whole) * 1e9)}


def _typed_value(value: float | int) -> dict[str, float | int]:
    if isinstance(value, int):
        return {"int64_value": int(value)}
    return {"double_value": float(value)}

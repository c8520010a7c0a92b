"""The Cloud Monitoring writer: buffered, batched, rate-limited per series, never raising."""

import threading
import time
from typing import Any

import pytest
from google.cloud import monitoring_v3

from shared.monitoring import MonitoringWriter, task_resource
from shared.observability import capture_logs

METRIC = "custom.googleapis.com/gateway/batch_items_failed"


class FakeClient:
    """Records create_time_series calls; fails the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures = failures
        self.called = threading.Event()

    def create_time_series(self, request: dict[str, Any], *, timeout: float) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("429 quota exceeded")
        self.requests.append(request)
        self.called.set()

    def points(self) -> list[tuple[dict[str, str], Any, float]]:
        """Every written point as (labels, value, end time in seconds)."""
        found = []
        for request in self.requests:
            for series in request["time_series"]:
                (point,) = series["points"]
                end = point["interval"]["end_time"]
                value = next(iter(point["value"].values()))
                found.append(
                    (series["metric"]["labels"], value, end["seconds"] + end["nanos"] / 1e9)
                )
        return found


class Clock:
    """A hand-moved clock, for both the interval clock and the wall clock."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _writer(client: FakeClient, clock: Clock, **options: Any) -> MonitoringWriter:
    return MonitoringWriter(
        lambda: client, "my-proj", clock=clock, wall_clock=clock, autostart=False, **options
    )


def test_record_makes_no_call() -> None:
    """Recording only buffers: no client is even built until a flush."""
    built = []

    def factory() -> FakeClient:
        built.append(True)
        return FakeClient()

    writer = MonitoringWriter(factory, "my-proj", autostart=False)
    for i in range(50):
        writer.record(METRIC, {"batch": str(i)}, i)
    assert built == []
    assert writer.pending() == 50


def test_flush_sends_at_most_200_series_per_call() -> None:
    """450 series go out as calls of 200, 200 and 50, each series once."""
    client, clock = FakeClient(), Clock()
    writer = _writer(client, clock)
    for i in range(450):
        writer.record(METRIC, {"batch": str(i)}, i)
    assert writer.flush() == 450
    assert [len(r["time_series"]) for r in client.requests] == [200, 200, 50]
    assert len({p[0]["batch"] for p in client.points()}) == 450
    assert writer.pending() == 0


def test_a_second_point_within_the_interval_waits_and_keeps_the_newest() -> None:
    """Two records of one series within the interval: one point now, the newest one later."""
    client, clock = FakeClient(), Clock()
    writer = _writer(client, clock, min_interval_s=10.0)
    writer.record(METRIC, {"state": "open"}, 1)
    writer.flush()
    clock.now += 2
    writer.record(METRIC, {"state": "open"}, 2)
    writer.record(METRIC, {"state": "open"}, 3)
    assert writer.flush() == 0
    clock.now += 8
    assert writer.flush() == 1
    (_, first, first_end), (_, second, second_end) = client.points()
    assert (first, second) == (1, 3)
    assert second_end - first_end >= 10.0


def test_end_times_of_a_series_only_increase() -> None:
    """A point recorded close to the previous one is stamped at least one interval later."""
    client, clock = FakeClient(), Clock()
    writer = _writer(client, clock, min_interval_s=10.0)
    writer.record(METRIC, {}, 1)
    writer.flush()
    clock.now += 1
    writer.record(METRIC, {}, 2)  # recorded 1 s after the first point
    clock.now += 9
    writer.flush()
    ends = [end for _, _, end in client.points()]
    assert ends == sorted(ends)
    assert ends[1] - ends[0] == pytest.approx(10.0)


def test_other_series_are_not_held_back_by_a_waiting_one() -> None:
    """Only the series written too recently waits; a new series goes out at once."""
    client, clock = FakeClient(), Clock()
    writer = _writer(client, clock)
    writer.record(METRIC, {"state": "open"}, 1)
    writer.flush()
    writer.record(METRIC, {"state": "open"}, 2)
    writer.record(METRIC, {"state": "closed"}, 1)
    assert writer.flush() == 1
    assert client.points()[-1][0] == {"state": "closed"}
    assert writer.pending() == 1


def test_write_errors_are_logged_once_and_never_raised() -> None:
    """Failing calls raise nothing; a run of failures logs one warning, recovery one line."""
    client, clock = FakeClient(failures=2), Clock()
    writer = _writer(client, clock, min_interval_s=10.0)
    with capture_logs(level="INFO") as logs:
        writer.record(METRIC, {}, 1)
        assert writer.flush() == 0
        clock.now += 10
        assert writer.flush() == 0
        clock.now += 10
        assert writer.flush() == 1
    events = [line["event"] for line in logs]
    assert events == ["monitoring_write_failed", "monitoring_write_recovered"]
    assert logs[0]["severity"] == "WARNING"
    assert logs[1]["failures"] == 2


def test_a_failing_client_factory_is_not_raised() -> None:
    """No credentials at first flush is logged and retried, not raised."""

    def factory() -> FakeClient:
        raise RuntimeError("could not find default credentials")

    writer = MonitoringWriter(factory, "my-proj", autostart=False)
    writer.record(METRIC, {}, 1.5)
    assert writer.flush() == 0
    assert writer.pending() == 1


def test_request_is_a_valid_create_time_series_request() -> None:
    """The request the writer builds parses as the API's own message, with typed values."""
    client, clock = FakeClient(), Clock(1_700_000_000.25)
    resource = task_resource("my-proj", job="batch")
    writer = _writer(client, clock, resource=resource)
    writer.record(METRIC, {"outcome": "failed"}, 3)
    writer.record("custom.googleapis.com/gateway/batch_seconds", {}, 2.5)
    writer.flush()
    message = monitoring_v3.CreateTimeSeriesRequest(client.requests[0])
    assert message.name == "projects/my-proj"
    first, second = message.time_series
    assert first.metric.type == METRIC
    assert first.resource.type == "generic_task"
    assert first.resource.labels["job"] == "batch"
    assert first.points[0].value.int64_value == 3
    assert second.points[0].value.double_value == 2.5
    assert first.points[0].interval.end_time.timestamp() == pytest.approx(1_700_000_000.25)


def test_the_background_thread_flushes() -> None:
    """Started on first record, the thread writes the point without anyone calling flush."""
    client = FakeClient()
    writer = MonitoringWriter(lambda: client, "my-proj", min_interval_s=0.05)
    try:
        writer.record(METRIC, {}, 1)
        assert client.called.wait(5.0)
        assert client.points()[0][1] == 1
    finally:
        writer.close(timeout_s=1.0)
    assert not any(t.name == "monitoring-writer" and t.is_alive() for t in threading.enumerate())


def test_close_writes_what_is_due() -> None:
    """close() stops the thread and flushes the points that may be written."""
    client = FakeClient()
    writer = MonitoringWriter(lambda: client, "my-proj", min_interval_s=60.0)
    writer.record(METRIC, {}, 7)
    started = time.monotonic()
    writer.close(timeout_s=1.0)
    assert time.monotonic() - started < 1.0
    assert client.points()[0][1] == 7


def test_more_than_200_series_per_call_is_refused() -> None:
    """The API's per-call limit cannot be configured away."""
    with pytest.raises(ValueError, match="max_series_per_call"):
        MonitoringWriter(FakeClient, "my-proj", max_series_per_call=201)

"""Low-rate aggregates reach the Cloud Monitoring writer only where a project is set."""

from __future__ import annotations

from typing import Any

from shared.config import Settings
from shared.container import Container
from shared.monitoring import MonitoringWriter


class FakeClient:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def create_time_series(self, request: dict[str, Any], *, timeout: float) -> object:
        self.requests.append(request)
        return None


def test_no_project_means_no_writer_and_no_error() -> None:
    """Locally (no GCP_PROJECT) recording a metric is a no-op."""
    container = Container(Settings())
    assert container.monitoring is None
    container.record_metric("circuit_open", {}, 1)


def test_circuit_transition_records_one_point_through_the_writer() -> None:
    """A circuit transition buffers one circuit_open point that a flush writes."""
    client = FakeClient()
    writer = MonitoringWriter(lambda: client, "proj", autostart=False)
    container = Container(Settings(gcp_project="proj"), monitoring=writer)
    container._circuit_transition("open")
    assert client.requests == []  # recording is never a network call
    assert writer.flush() == 1
    (series,) = client.requests[0]["time_series"]
    assert series["metric"]["type"] == "custom.googleapis.com/gateway/circuit_open"

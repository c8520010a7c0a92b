"""The fields Terraform's log-based metrics read are the ones the gateway really writes."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.observability import ACCESS_LINE_FIELDS, capture_logs, configure_logging
from tests.support import bearer, client, make_key
from tests.unit.test_terraform import log_metric_fields


@pytest.fixture
def logs(container: Container, base_settings: Settings) -> Iterator[list[dict[str, Any]]]:
    """Every structured line written while a start, an OCR call, a transcription, a 401 and
    a circuit transition happen."""
    with StandIn() as standin:
        settings = dataclasses.replace(base_settings, mistral_server_url=standin.url)
        local = Container(settings, pool=container.pool, redis_client=container.redis)
        previous = set_container(local)
        configure_logging(settings)
        key = make_key(local, "user")
        try:
            with capture_logs() as lines:
                client("start").post(
                    "/v1/conversations",
                    headers=bearer(key),
                    json={"inputs": "metrics", "model": "m"},
                )
                document = {"type": "document_url", "document_url": "https://example.com/a.pdf"}
                client("start").post(
                    "/v1/ocr",
                    headers=bearer(key),
                    json={"model": "mistral-ocr-latest", "document": document},
                )
                client("start").post(
                    "/v1/audio/transcriptions",
                    headers=bearer(key),
                    data={
                        "model": "voxtral-mini-latest",
                        "file": (io.BytesIO(b"\x01" * 4096), "a.mp3"),
                    },
                    content_type="multipart/form-data",
                )
                client("history").get("/v1/conversations")
                # The container's breaker, with a threshold of one: one failure opens it.
                breaker = dataclasses.replace(settings, breaker_failure_threshold=1)
                opening = Container(breaker, redis_client=local.redis).breaker
                opening.record_failure(opening.before_call())
            yield lines
        finally:
            set_container(previous)


def test_every_metric_field_appears_in_real_log_lines(logs: list[dict[str, Any]]) -> None:
    """Each jsonPayload field a metric extracts is present in a line the gateway wrote."""
    written: set[str] = set()
    for line in logs:
        written |= set(line)
    metric_fields = log_metric_fields()
    # Batch events are written by the batch function; its own tests cover them.
    batch_only = {"batch_id", "items_total", "items_failed"}
    missing = metric_fields - batch_only - written
    assert not missing, f"metrics read fields no line carries: {sorted(missing)}"


def test_access_lines_only_use_documented_fields(logs: list[dict[str, Any]]) -> None:
    """Access lines carry no payload field outside ACCESS_LINE_FIELDS (plus the envelope)."""
    envelope = {
        "severity",
        "message",
        "time",
        "timestamp",
        "httpRequest",
        "request_id",
        "function",
        "logging.googleapis.com/trace",
        "logging.googleapis.com/spanId",
        "logging.googleapis.com/trace_sampled",
        "logging.googleapis.com/sourceLocation",
        "logging.googleapis.com/labels",
    }
    access = [line for line in logs if line.get("event") == "access"]
    assert len(access) == 4  # the start, the OCR call, the transcription, the history read
    for line in access:
        assert set(line) - envelope <= ACCESS_LINE_FIELDS, set(line) - envelope

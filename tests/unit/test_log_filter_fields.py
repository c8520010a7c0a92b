"""The log handler's Cloud Logging filter sets every field google-cloud-logging's does."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from google.cloud.logging_v2.handlers.handlers import CloudLoggingFilter

from shared.observability._handler import GatewayLogHandler, _CloudFieldsFilter

_FIELDS = (
    "_resource",
    "_trace",
    "_span_id",
    "_trace_sampled",
    "_http_request",
    "_source_location",
    "_labels",
    "_trace_str",
    "_span_id_str",
    "_trace_sampled_str",
    "_http_request_str",
    "_source_location_str",
    "_labels_str",
)


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("gateway.access", logging.INFO, "/app/x.py", 7, "m", None, None)
    record.funcName = "handle"
    for name, value in extra.items():
        setattr(record, name, value)
    return record


BOUND = {
    "trace": "projects/p/traces/0af7651916cd43dd8448eb211c80319c",
    "span_id": "b7ad6b7169203331",
    "trace_sampled": True,
    "http_request": {"requestMethod": "POST", "status": 200, "latency": "0.002000s"},
}


@pytest.mark.parametrize(
    "extra",
    [
        BOUND,
        {**BOUND, "trace": None, "span_id": None, "trace_sampled": False, "http_request": None},
        {**BOUND, "labels": {"a": "b"}, "resource": "r", "source_location": {"line": 1}},
        {"http_request": None},  # outside a request: the library's own path
        {},
    ],
)
def test_same_fields_as_the_library(extra: dict[str, Any]) -> None:
    """For records with and without the request's fields bound, every field the formatter
    reads is what google-cloud-logging's filter sets."""
    ours, theirs = _record(**extra), _record(**copy.deepcopy(extra))
    assert _CloudFieldsFilter(project="p", default_labels={"d": "1"}).filter(ours)
    assert CloudLoggingFilter(project="p", default_labels={"d": "1"}).filter(theirs)
    for name in _FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_the_handler_uses_it_in_place_of_the_librarys() -> None:
    """The gateway's handler carries this filter and not the library's."""
    kinds = [type(f) for f in GatewayLogHandler(project_id="p").filters]
    assert _CloudFieldsFilter in kinds
    assert CloudLoggingFilter not in kinds

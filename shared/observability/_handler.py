"""google-cloud-logging's StructuredLogHandler, fed the request context and redacted.

Imported only when logging is configured: google.cloud.logging costs a few
hundred milliseconds to import, which a cold start should not pay before it
needs to.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

import google.cloud.logging_v2
from google.cloud.logging_v2.handlers import StructuredLogHandler
from google.cloud.logging_v2.handlers.handlers import CloudLoggingFilter

from shared.observability._context import RequestContext, current_request, trace_resource
from shared.observability._state import STATE

__all__ = ["CaptureHandler", "GatewayLogHandler", "access_text", "write_access"]


class _Stdout:
    """sys.stdout as it is at write time, so a swapped stdout (pytest's capsys) is honoured."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class _Encoder(json.JSONEncoder):
    """A field that JSON cannot hold (a UUID, a datetime) is written as its str()."""

    def default(self, o: Any) -> Any:
        return str(o)


class _RequestContextFilter(logging.Filter):
    """Puts the request id, function and trace of the current request on the record.

    It runs before the library's CloudLoggingFilter, which reads `trace`, `span_id`,
    `trace_sampled` and `http_request` off the record when they are set there.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # Only the access line carries httpRequest; without this the library infers a
        # partial one from the Flask request for every line.
        if not hasattr(record, "http_request"):
            record.http_request = None
        context = current_request()
        if context is None:
            return True
        # Set even when the request had no valid trace header: the library would otherwise
        # re-read the headers itself, and its legacy-header parser accepts malformed ones.
        if not hasattr(record, "trace"):
            record.trace = (
                trace_resource(STATE.project, context.trace_id) if context.trace_id else None
            )
            record.span_id = context.span_id
            record.trace_sampled = context.sampled
        bound: dict[str, Any] = {"request_id": context.request_id}
        if context.function:
            bound["function"] = context.function
        given = getattr(record, "json_fields", None)
        # Explicit fields win: the access line names its own request id.
        record.json_fields = {**bound, **given} if isinstance(given, Mapping) else bound
        return True


# What `_RequestContextFilter` puts on a request's records: all the library would infer.
_BOUND = ("trace", "span_id", "trace_sampled", "http_request")


class _CloudFieldsFilter(CloudLoggingFilter):
    """google-cloud-logging's filter, without inferring from the request what is set.

    The library's `filter` asks `get_request_data()` (Flask's request, its trace headers,
    an httpRequest built from it: 1.4% of a full start's CPU per line, py-spy) and then
    uses each inferred value only where the record does not carry its own. A request's
    records carry all four (`_RequestContextFilter`), so for them this sets the same
    fields the library's code below would, without asking; any other record goes to the
    library's `filter` unchanged (`tests/unit/test_log_filter_fields.py` compares both).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not all(hasattr(record, name) for name in _BOUND):
            return bool(super().filter(record))  # type: ignore[no-untyped-call]
        fields: Any = record
        user_labels = getattr(record, "labels", {})
        fields._resource = getattr(record, "resource", None)
        fields._trace = fields.trace or None
        fields._span_id = fields.span_id or None
        fields._trace_sampled = bool(fields.trace_sampled)
        fields._http_request = fields.http_request
        fields._source_location = CloudLoggingFilter._infer_source_location(record)  # type: ignore[no-untyped-call]
        logger_label = {"python_logger": record.name} if record.name else {}
        fields._labels = {**logger_label, **self.default_labels, **user_labels} or None
        fields._trace_str = fields._trace or ""
        fields._span_id_str = fields._span_id or ""
        fields._trace_sampled_str = "true" if fields._trace_sampled else "false"
        fields._http_request_str = json.dumps(fields._http_request or {}, ensure_ascii=False)
        fields._source_location_str = json.dumps(fields._source_location or {}, ensure_ascii=False)
        fields._labels_str = json.dumps(fields._labels or {}, ensure_ascii=False)
        return True


def _cloud_fields(library: Any) -> Any:
    return _CloudFieldsFilter(  # type: ignore[no-untyped-call]
        project=library.project, default_labels=library.default_labels
    )


class GatewayLogHandler(StructuredLogHandler):
    """One JSON line per record on stdout, in Cloud Logging's structured format."""

    def __init__(self, *, project_id: str | None, stream: Any = None) -> None:
        # The library's methods carry no annotations; their behaviour is read from its source.
        super().__init__(  # type: ignore[no-untyped-call]
            stream=stream if stream is not None else _Stdout(),
            project_id=project_id,
            json_encoder_cls=_Encoder,
        )
        # The library's filter, added by its __init__, is replaced by the one above.
        self.filters = [
            _cloud_fields(f) if type(f) is CloudLoggingFilter else f for f in self.filters
        ]
        self.filters.insert(0, _RequestContextFilter())
        # What `access_text` stands for; a handler given other filters since is sent records.
        self.installed_filters = list(self.filters)

    def format(self, record: logging.LogRecord) -> str:
        line: str = super().format(record)  # type: ignore[no-untyped-call]
        return STATE.redactor(line)

    def write_line(self, text: str) -> None:
        """Write one finished line (`write_access`), as `emit` writes a formatted record:
        one write under the handler's lock, then a flush."""
        if google.cloud.logging_v2._instrumentation_emitted is False:
            self.emit_instrumentation_info()  # type: ignore[no-untyped-call]
        self.acquire()
        try:
            self.stream.write(text + self.terminator)
            self.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            self.release()


class CaptureHandler(GatewayLogHandler):
    """Formats exactly as the stdout handler does and keeps the parsed objects."""

    def __init__(self, sink: list[dict[str, Any]], *, project_id: str | None) -> None:
        super().__init__(project_id=project_id)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.append(json.loads(self.format(record)))
        except Exception:
            self.handleError(record)

    def write_line(self, text: str) -> None:
        try:
            self.sink.append(json.loads(text))
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": text}))


# The access line's own path. There is one such line per request, and through `logging`
# it cost a LogRecord, the caller's frame walk, the two filters above, the library's
# %-template, four json.dumps and a json.loads attempt: 11% of a full start's CPU
# (py-spy, the whole line). Here it is one dict in the library's key order, one encode
# with the same encoder, the same redaction of the whole text, and one write under the
# handler's lock. Measured in the same run against the library's path it replaces
# (`python -m bench.access_line`, CPU per line, best of 7 alternating rounds):
# library 48.8 us, this path 25.7 us (0.53x); bench/_notes.py, note 18, has the start.
# `tests/unit/test_access_line_fast.py` proves the line the same JSON object (keys in
# the same order) as the library's for 2xx, 4xx, 5xx, unrouted, streamed, with and
# without a trace header, with secrets in the request; other records (events, errors,
# bodies) keep the library's path.
_ENCODER = _Encoder(ensure_ascii=False)


def access_text(
    context: RequestContext,
    logger: str,
    level: int,
    message: str,
    fields: Mapping[str, Any],
    http_request: Mapping[str, Any],
    source: tuple[str, int, str],
) -> str:
    """The line `GatewayLogHandler.format` writes for a record of `logger` at `level`,
    its message, json fields and httpRequest these, logged at `source` (file, line,
    function) inside the request `context`: the same JSON object, keys in the same order."""
    # As `_RequestContextFilter` binds them (the given fields win), then the library's
    # message, envelope and sourceLocation.
    line: dict[str, Any] = {"request_id": context.request_id}
    if context.function:
        line["function"] = context.function
    line.update(fields)
    line["message"] = message
    line["severity"] = logging.getLevelName(level)
    line["logging.googleapis.com/labels"] = {"python_logger": logger}
    line["logging.googleapis.com/trace"] = (
        trace_resource(STATE.project, context.trace_id) if context.trace_id else ""
    )
    line["logging.googleapis.com/spanId"] = context.span_id or ""
    line["logging.googleapis.com/trace_sampled"] = bool(context.sampled)
    path, lineno, function = source
    line["logging.googleapis.com/sourceLocation"] = {
        "line": lineno,
        "file": path,
        "function": function,
    }
    line["httpRequest"] = http_request
    return STATE.redactor(_ENCODER.encode(line))


def write_access(
    logger: logging.Logger,
    level: int,
    msg: str,
    args: tuple[Any, ...],
    fields: Mapping[str, Any],
    http_request: Mapping[str, Any],
    frame: FrameType,
) -> bool:
    """Hand the access line to the handlers `logger.log` would reach: the gateway's own
    get it as one finished line (`access_text`), any other (pytest's) the record `log`
    would make. The caller has checked `logger.isEnabledFor(level)`.

    False, having written nothing, where the library's path must decide: outside a
    request, a logger with filters of its own, no handler at all (logging's last resort).
    """
    context = current_request()
    if context is None or logger.filters:
        return False
    source = (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
    text: str | None = None
    record: logging.LogRecord | None = None
    found = False
    node: logging.Logger | None = logger
    # Logger.callHandlers' walk: each logger's handlers, up while it propagates.
    while node is not None:
        for handler in node.handlers:
            found = True
            if level < handler.level:
                continue
            if isinstance(handler, GatewayLogHandler) and (
                handler.filters == handler.installed_filters
            ):
                if text is None:
                    text = access_text(
                        context, logger.name, level, msg % args, fields, http_request, source
                    )
                handler.write_line(text)
            else:
                if record is None:
                    path, lineno, function = source
                    extra = {"json_fields": dict(fields), "http_request": dict(http_request)}
                    record = logger.makeRecord(
                        logger.name, level, path, lineno, msg, args, None, function, extra
                    )
                handler.handle(record)
        node = node.parent if node.propagate else None
    return found

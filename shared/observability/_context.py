"""The request context every log line carries, kept in `contextvars`.

`bind_request` at the start of a request replaces whatever an earlier request
on the same thread left behind (gunicorn's threaded workers reuse threads);
`clear_request` at the end drops it. The trace comes from the load balancer's
`traceparent` (W3C) or `X-Cloud-Trace-Context` header.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

from shared.observability._http import HttpRequest

__all__ = [
    "RequestContext",
    "Trace",
    "bind_http_request",
    "bind_request",
    "clear_request",
    "current_request",
    "parse_cloud_trace",
    "parse_trace",
    "parse_traceparent",
    "trace_resource",
]

# https://www.w3.org/TR/trace-context/#traceparent-header: lowercase hex only.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-\S*)?")
# https://cloud.google.com/trace/docs/trace-context#legacy-http-header:
# TRACE_ID/SPAN_ID;o=OPTIONS, the span id in decimal.
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([0-9]))?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class Trace:
    """A trace id (32 hex), the caller's span id (16 hex) and the sampled flag."""

    trace_id: str
    span_id: str | None = None
    sampled: bool = False


@dataclass(frozen=True)
class RequestContext:
    """What every line logged during one request carries."""

    request_id: str
    function: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    sampled: bool = False


_current: ContextVar[RequestContext | None] = ContextVar("gateway_request", default=None)


def parse_traceparent(header: str | None) -> Trace | None:
    """The trace in a W3C `traceparent` header; None when absent or malformed."""
    if not header:
        return None
    found = _TRACEPARENT.fullmatch(header.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    # Version ff is invalid; version 00 has exactly four parts; all-zero ids are invalid.
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return Trace(trace_id, span_id, bool(int(flags, 16) & 1))


def parse_cloud_trace(header: str | None) -> Trace | None:
    """The trace in an `X-Cloud-Trace-Context` header; None when absent or malformed."""
    if not header:
        return None
    found = _CLOUD_TRACE.fullmatch(header.strip())
    if found is None:
        return None
    trace_id = found.group(1).lower()
    if trace_id == _ZERO_TRACE:
        return None
    span_id = None
    if found.group(2) is not None:
        number = int(found.group(2))
        # Cloud Logging wants the span as 16 hex digits; 0 means "no span".
        if 0 < number < 2**64:
            span_id = f"{number:016x}"
    sampled = found.group(3) is not None and bool(int(found.group(3)) & 1)
    return Trace(trace_id, span_id, sampled)


def parse_trace(traceparent: str | None, cloud_trace_context: str | None) -> Trace | None:
    """`traceparent` first, as google-cloud-logging does; the legacy header otherwise."""
    return parse_traceparent(traceparent) or parse_cloud_trace(cloud_trace_context)


def trace_resource(project: str, trace_id: str) -> str:
    """The `logging.googleapis.com/trace` value: the full resource name when the project is
    known (Cloud Logging only correlates that form), the bare id locally."""
    return f"projects/{project}/traces/{trace_id}" if project else trace_id


def bind_request(
    *,
    request_id: str,
    trace: str | None = None,
    span: str | None = None,
    function: str | None = None,
    sampled: bool = False,
) -> RequestContext:
    """Start a request's log context, replacing any previous one on this thread."""
    context = RequestContext(request_id, function, trace, span if trace else None, sampled)
    _current.set(context)
    return context


def bind_http_request(
    request: HttpRequest, *, request_id: str, function: str | None = None
) -> RequestContext:
    """`bind_request` with the trace read from the request's headers."""
    headers = request.headers
    trace = parse_trace(headers.get("traceparent"), headers.get("X-Cloud-Trace-Context"))
    if trace is None:
        return bind_request(request_id=request_id, function=function)
    return bind_request(
        request_id=request_id,
        trace=trace.trace_id,
        span=trace.span_id,
        function=function,
        sampled=trace.sampled,
    )


def clear_request() -> None:
    """End the request's log context: later lines carry no request id."""
    _current.set(None)


def current_request() -> RequestContext | None:
    return _current.get()

"""Logs as Cloud Logging reads them: one JSON line per event on stdout.

Configure once per process with `configure_logging(settings)`; it installs
google-cloud-logging's `StructuredLogHandler` on the root logger, at LOG_LEVEL,
with the project id given (never detected: no metadata-server call). The access
line, one per request, skips the library's per-record work: `_handler.write_access`
writes the same JSON object the library's handler would (a test compares them).

Per request::

    bind_http_request(request, request_id=..., function=...)   # at the very start
    ...                                    # every line now carries request_id, trace
    access_log(ctx, response)              # the one access line (a FunctionApp after hook)
    clear_request()                        # at the very end

A streamed response returns ``deferred_stream(ctx, chunks)`` as its body: it sets
``ctx.access.deferred = True`` (so `access_log` writes nothing) and calls
``emit_access(ctx, status)`` when the last chunk is sent or the client goes away,
inside the request's log context. A request
that matched no route has no `ctx`: `emit_unrouted_access` writes its line.

Other lines: `log_event("circuit_transition", "WARNING", state="open")`,
`log_exception(exc)`, `log_body("request", raw)` (only when LOG_BODIES is on).
Every line is scrubbed of gateway keys, Bearer tokens, URL and `password=`
credentials and the secret settings before it is written.

Tests use `capture_logs()` to get the written lines back as dicts.
"""

from shared.observability._access import AccessFields
from shared.observability._capture import capture_logs
from shared.observability._context import (
    RequestContext,
    Trace,
    bind_http_request,
    bind_request,
    clear_request,
    current_request,
    parse_cloud_trace,
    parse_trace,
    parse_traceparent,
    trace_resource,
)
from shared.observability._events import (
    ACCESS_LINE_FIELDS,
    AccessContext,
    access_log,
    emit_access,
    emit_unrouted_access,
    log_body,
    log_event,
    log_exception,
    severity_for_status,
)
from shared.observability._redact import REDACTED, Redactor
from shared.observability._setup import configure_logging, reset_logging
from shared.observability._stream import deferred_stream

__all__ = [
    "AccessFields",
    "ACCESS_LINE_FIELDS",
    "REDACTED",
    "AccessContext",
    "Redactor",
    "RequestContext",
    "Trace",
    "access_log",
    "bind_http_request",
    "bind_request",
    "capture_logs",
    "clear_request",
    "configure_logging",
    "current_request",
    "deferred_stream",
    "emit_access",
    "emit_unrouted_access",
    "log_body",
    "log_event",
    "log_exception",
    "parse_cloud_trace",
    "parse_trace",
    "parse_traceparent",
    "reset_logging",
    "severity_for_status",
    "trace_resource",
]

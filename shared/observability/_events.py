"""The access line, structured events, exception reports and body logging."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any, Protocol

from shared.observability._access import LINE_FIELDS, AccessFields
from shared.observability._http import HttpRequest, HttpResponse
from shared.observability._state import STATE

__all__ = [
    "ACCESS_LINE_FIELDS",
    "AccessContext",
    "access_log",
    "emit_access",
    "emit_unrouted_access",
    "log_body",
    "log_event",
    "log_exception",
    "severity_for_status",
]

# The access line's jsonPayload fields. Terraform's log-based metrics extract them by
# these names: renaming one breaks a metric, so they are a public constant.
ACCESS_LINE_FIELDS: frozenset[str] = frozenset(
    {
        "event",
        "function",
        "route",
        "method",
        "status",
        "latency_ms",
        "upstream_latency_ms",
        "owner",
        "key_prefix",
        "agent_id",
        "model",
        "conversation_id",
        "tokens_in",
        "tokens_out",
        "pages",
        "audio_seconds",
        "rate_limit",
        "circuit",
        "idempotent_replay",
        "error_type",
        "request_id",
    }
)
# `AccessFields` a handler may fill in; the rest of the line is computed here.
_INTEGER = frozenset({"tokens_in", "tokens_out", "pages", "audio_seconds"})
_FLOAT = frozenset({"upstream_latency_ms"})
_BOOLEAN = frozenset({"idempotent_replay"})
_TEXT = frozenset(
    {
        "owner",
        "key_prefix",
        "agent_id",
        "model",
        "conversation_id",
        "rate_limit",
        "circuit",
        "error_type",
    }
)
_BODY_LIMIT = 4096  # characters of a logged body
_MESSAGE = "%s %s %d"  # the access line's message: method, route (or path), status

_SEVERITIES: Mapping[str, int] = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "NOTICE": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

_access_logger = logging.getLogger("gateway.access")
_event_logger = logging.getLogger("gateway.events")
_error_logger = logging.getLogger("gateway.errors")
_body_logger = logging.getLogger("gateway.bodies")


class _Route(Protocol):
    @property
    def template(self) -> str: ...

    @property
    def function(self) -> str: ...


class AccessContext(Protocol):
    """What the access line reads from a request: `shared.http.web.Context` fits."""

    @property
    def request(self) -> HttpRequest: ...

    @property
    def route(self) -> _Route: ...

    @property
    def access(self) -> AccessFields: ...

    @property
    def request_id(self) -> str: ...

    @property
    def started(self) -> float: ...


def severity_for_status(status: int) -> str:
    """INFO below 400, WARNING for 4xx, ERROR for 5xx."""
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "WARNING"
    return "INFO"


def access_log(ctx: AccessContext, response: HttpResponse) -> None:
    """`FunctionApp` after hook: the request's one access line.

    When `ctx.access.deferred` is set (`deferred_stream` sets it for a streamed body)
    the hook writes nothing: the stream calls `emit_access(ctx, status)` when the last
    chunk is sent or the client goes away.
    """
    if ctx.access.deferred:
        return
    emit_access(ctx, response.status_code, response_bytes=response.calculate_content_length())


def emit_access(ctx: AccessContext, status: int, *, response_bytes: int | None = None) -> None:
    """Write the access line for `ctx` now; at most once per request, whatever calls it.

    An unexpected exception the app stored in `ctx.access.exception` is logged first,
    once, at ERROR with its traceback. Never raises: a logging fault must not fail a request.
    """
    access = ctx.access
    if access.emitted:
        return
    access.emitted = True
    try:
        exc, access.exception = access.exception, None
        if exc is not None:
            log_exception(exc)
        _write_access(
            ctx.request,
            function=ctx.route.function,
            route=ctx.route.template,
            status=status,
            started=ctx.started,
            request_id=ctx.request_id,
            fields={name: getattr(access, name) for name in LINE_FIELDS},
            response_bytes=response_bytes,
        )
    except Exception:
        _error_logger.exception("the access line could not be written")


def emit_unrouted_access(
    request: HttpRequest,
    *,
    function: str,
    status: int,
    started: float,
    request_id: str,
    error_type: str | None = None,
    response_bytes: int | None = None,
) -> None:
    """The access line of a request that matched no route (404, 405): no `route` field,
    so an unknown path never becomes a metric label."""
    try:
        _write_access(
            request,
            function=function,
            route=None,
            status=status,
            started=started,
            request_id=request_id,
            fields={"error_type": error_type},
            response_bytes=response_bytes,
        )
    except Exception:
        _error_logger.exception("the access line could not be written")


def _write_access(
    request: HttpRequest,
    *,
    function: str,
    route: str | None,
    status: int,
    started: float,
    request_id: str,
    fields: Mapping[str, Any],
    response_bytes: int | None,
) -> None:
    elapsed = max(time.perf_counter() - started, 0.0)
    line: dict[str, Any] = {
        "event": "access",
        "function": function,
        "route": route,
        "method": request.method,
        "status": int(status),
        "latency_ms": round(elapsed * 1000, 3),
        "request_id": request_id,
    }
    for name, value in fields.items():
        if name in line:
            continue
        coerced = _coerce(name, value)
        if coerced is not None:
            line[name] = coerced
    line = {k: v for k, v in line.items() if v is not None}
    level = _SEVERITIES[severity_for_status(status)]
    if not _access_logger.isEnabledFor(level):
        return
    args = (request.method, route or request.path[:200], status)
    http = _http_request(request, status, elapsed, response_bytes)
    # The line's own path (`_handler.write_access`) when logging is configured; the
    # library's (`logging`, google-cloud-logging's handler) where it declines.
    write = STATE.access_writer
    if write is not None and write(
        _access_logger, level, _MESSAGE, args, line, http, sys._getframe()
    ):
        return
    _access_logger.log(level, _MESSAGE, *args, extra={"json_fields": line, "http_request": http})


def _coerce(name: str, value: Any) -> Any:
    """The field in its declared type; None (omitted) for unknown names and bad values."""
    if value is None:
        return None
    try:
        if name in _TEXT:
            return str(value)
        if name in _INTEGER:
            return int(value)
        if name in _FLOAT:
            return round(float(value), 3)
        if name in _BOOLEAN:
            return bool(value)
    except (TypeError, ValueError):
        return None
    return None


def _http_request(
    request: HttpRequest, status: int, elapsed_s: float, response_bytes: int | None
) -> dict[str, Any]:
    """Cloud Logging's HttpRequest: https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#HttpRequest"""
    http: dict[str, Any] = {
        "requestMethod": request.method,
        "requestUrl": _url(request),
        "status": int(status),
        "latency": f"{elapsed_s:.6f}s",
    }
    protocol = request.environ.get("SERVER_PROTOCOL")
    if protocol:
        http["protocol"] = protocol
    user_agent = request.headers.get("User-Agent")
    if user_agent:
        http["userAgent"] = user_agent
    referer = request.headers.get("Referer")
    if referer:
        http["referer"] = referer
    # Behind the load balancer the caller is the first X-Forwarded-For entry.
    forwarded = request.headers.get("X-Forwarded-For") or ""
    remote = forwarded.split(",")[0].strip() or request.remote_addr
    if remote:
        http["remoteIp"] = remote
    if request.content_length is not None:
        http["requestSize"] = str(request.content_length)
    if response_bytes is not None:
        http["responseSize"] = str(response_bytes)
    return http


# PEP 3333's URL reconstruction: a request's URL is what the server made of these keys
# of its environ. Building it (werkzeug's `Request.url`: IRI decoding, IDNA, quoting)
# costs more than the rest of the httpRequest (bench/RESULTS.md, note 18); a start's URL
# is the same every time, so each server's answer for these keys is kept (bounded:
# cleared when full).
_URL_KEYS = (
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
)
_URLS_KEPT = 1024
_urls: dict[tuple[Any, ...], str] = {}


def _url(request: HttpRequest) -> str:
    """`request.url`, computed once per request class and URL keys of the environ."""
    environ = request.environ
    key = (type(request), *[environ.get(name) for name in _URL_KEYS])
    url = _urls.get(key)
    if url is None:
        url = request.url
        if len(_urls) >= _URLS_KEPT:
            _urls.clear()
        _urls[key] = url
    return url


def log_event(event: str, severity: str = "INFO", **fields: Any) -> None:
    """One structured line: `event` plus the fields (None ones omitted).

    For example `log_event("circuit_transition", "WARNING", state="open")`,
    `log_event("batch_finished", batch_id=..., items_total=..., items_failed=...)`,
    `log_event("input_policy", pattern=..., action=...)`.
    """
    level = _SEVERITIES.get(severity.upper())
    if level is None:
        raise ValueError(f"unknown severity {severity!r}; use one of {', '.join(_SEVERITIES)}")
    payload = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
    _event_logger.log(level, event, extra={"json_fields": payload})


def log_exception(exc: BaseException, message: str | None = None) -> None:
    """An unexpected exception at ERROR, with its traceback in `stack_trace`.

    Error Reporting reads `stack_trace` before `message`:
    https://cloud.google.com/error-reporting/docs/formatting-error-messages
    """
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    _error_logger.error(
        message or f"unhandled {type(exc).__name__}",
        extra={
            "json_fields": {
                "event": "exception",
                "exception_type": type(exc).__qualname__,
                "stack_trace": stack,
            }
        },
    )


def log_body(kind: str, body: bytes | str | None) -> None:
    """Log a request or response body, redacted and truncated, only when LOG_BODIES is on."""
    if not STATE.log_bodies or body is None:
        return
    raw = body if isinstance(body, bytes) else body.encode()
    text = raw.decode("utf-8", errors="replace")
    # Redact the whole text first: a secret cut in two by truncation would match no pattern.
    text = STATE.redactor(text)
    _body_logger.info(
        "%s body",
        kind,
        extra={
            "json_fields": {
                "event": "body",
                "kind": kind,
                "bytes": len(raw),
                "truncated": len(text) > _BODY_LIMIT,
                "body": text[:_BODY_LIMIT],
            }
        },
    )

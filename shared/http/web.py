"""HTTP plumbing every function shares: routing, bodies, replies, errors.

A function's `main.py` builds one `FunctionApp` with its handlers and hands
each request to it. The app matches the route table (403 not_exposed, 404 or
405 in the gateway's error shape), builds a `Context`, runs the handler, and
maps any exception to a response through `shared.errors.error_response`, the
one place that does.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import flask
import werkzeug.exceptions

from shared import jsonsafe, observability
from shared.calls import Call
from shared.container import Container, get_container
from shared.errors import (
    BadRequest,
    ClientError,
    GatewayError,
    InvalidJSON,
    MethodNotAllowed,
    NotExposed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    error_response,
    field_error,
)
from shared.http import routes
from shared.jsonsafe import MAX_JSON_DEPTH, TOO_DEEP, check_storable, check_text
from shared.tenancy import audit
from shared.tenancy.auth import PUBLIC_OPERATIONS, authenticate, authorize

__all__ = [
    "MAX_JSON_DEPTH",
    "Context",
    "check_storable",
    "discard_body",
    "FunctionApp",
    "Handler",
    "json_response",
    "request_id",
    "unrouted",
]

_JSON = "application/json"


@dataclass(kw_only=True)
class Context(Call):
    """One request as a handler sees it: a `Call` with its HTTP request and route."""

    request: flask.Request
    route: routes.Route
    params: dict[str, str]
    # The request body as received, once `json_body()` has read it.
    raw_body: bytes = b""
    # True once `json_body()` has read the whole body (no byte of it left unread).
    body_read: bool = False
    # Bytes taken from the instance's body budget for this request's body (`bytes_body`
    # with `media`), given back when its handler returns.
    budgeted_bytes: int = 0

    def json_body(self, *, media: bool = False) -> dict[str, Any]:
        """The request body as a JSON object: 415, 413, 400 or 422 otherwise (`media`: as
        `bytes_body` reads it)."""
        request = self.request
        mimetype = (request.mimetype or "").lower()
        if mimetype != _JSON:
            raise UnsupportedMediaType("the request body must be application/json")
        raw = self.bytes_body(media=media)
        try:
            body = jsonsafe.loads(raw)
        except RecursionError:
            # Python's parser recurses per nesting level; a deep body must not be a 500.
            raise InvalidJSON(TOO_DEEP) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidJSON(f"the request body is not valid JSON: {_json_reason(exc)}") from None
        check_storable(body)
        if not isinstance(body, dict):
            raise ValidationFailed(
                [field_error(("body",), "Input should be a valid dictionary", "dict_type")]
            )
        return body

    def bytes_body(self, *, media: bool = False) -> bytes:
        """The whole request body as received, whatever its type: 413 above MAX_BODY_BYTES.

        A body that may carry media inline (`media`: an OCR document, audio, images) may
        be up to MAX_MEDIA_BODY_BYTES when it says its Content-Length; above
        MAX_BODY_BYTES it is read only once the instance's body budget takes its size
        (`shared.limits.body_budget`), else 503 with Retry-After.
        """
        request = self.request
        settings = self.container.settings
        limit = settings.max_body_bytes
        length = request.content_length
        if media and length is not None and length > limit:
            limit = settings.max_media_body_bytes
        too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
        if length is not None and length > limit:
            self.body_read = discard_body(request, settings.max_discard_bytes)
            raise too_large
        if length is not None and length > settings.max_body_bytes:
            if not self.container.body_budget.take(length):
                raise ServiceUnavailable(
                    "this instance holds as many large request bodies as it may; try again",
                    retry_after_s=1,
                    code="body_budget_full",
                )
            self.budgeted_bytes = length
        raw = _read_body(request, limit + 1)
        self.raw_body = raw
        if len(raw) > limit:
            self.body_read = discard_body(request, settings.max_discard_bytes - len(raw))
            raise too_large
        self.body_read = True
        return raw

    def query(self, name: str) -> str | None:
        return self.request.args.get(name)

    def multipart_body(self) -> tuple[str, int | None, Iterator[bytes]]:
        """A multipart body to relay as it arrives, never held whole: its content type (with
        the boundary), its length if given, and its chunks. 415 for another type; 413 past
        MAX_UPLOAD_BYTES, by Content-Length at once, or while a chunked body is read."""
        request = self.request
        if (request.mimetype or "").lower() != "multipart/form-data":
            raise UnsupportedMediaType("the request body must be multipart/form-data")
        limit = self.container.settings.max_upload_bytes
        length = request.content_length
        if length is not None and length > limit:
            # Read and dropped first (within MAX_DISCARD_BYTES), so the caller reads the 413.
            self.body_read = discard_body(request, self.container.settings.max_discard_bytes)
            raise PayloadTooLarge(f"uploads are limited to {limit} bytes")

        def chunks() -> Iterator[bytes]:
            read = 0
            while True:
                chunk = _read_body(request, _UPLOAD_STEP)
                if not chunk:
                    self.body_read = True
                    return
                read += len(chunk)
                if read > limit:
                    raise PayloadTooLarge(f"uploads are limited to {limit} bytes")
                yield chunk

        return request.headers.get("Content-Type", ""), length, chunks()


_READ_STEP = 65_536
# An upload is relayed in pieces of this size: the most of it held at once.
_UPLOAD_STEP = 262_144


def _read_body(request: flask.Request, size: int) -> bytes:
    """Up to `size` bytes of the body; 400 if its framing is broken (a chunk size that
    is no hex number or overflows, a chunk longer than its size, a body cut short)."""
    try:
        data: bytes = request.stream.read(size)
    except GatewayError:
        raise
    except Exception as exc:  # the server's own parse error (gunicorn, werkzeug): any of them
        raise BadRequest("the request body's framing is malformed") from exc
    return data


def discard_body(request: flask.Request, bound: int) -> bool:
    """Read and drop the rest of the body, up to `bound` bytes; True if it was all read.

    An answer sent while the caller is still sending (a 413) is otherwise lost: the
    server closes the connection on the unread body, and the caller, or the load
    balancer in front, sees a reset instead of the answer.
    """
    length = request.content_length
    if bound <= 0 or (length is not None and length > bound):
        return False
    left = bound
    try:
        while left > 0:
            chunk = request.stream.read(min(_READ_STEP, left))
            if not chunk:
                return True
            left -= len(chunk)
    except Exception:  # broken framing: nothing more to read, the connection closes
        return False
    return False


def _reject_unstorable_query(request: flask.Request) -> None:
    """422 for a query parameter PostgreSQL cannot compare (NUL, lone surrogate)."""
    if not request.query_string:
        return  # werkzeug parses `args` on first use: a request without a query skips it
    for name, value in request.args.items(multi=True):
        check_text(name, ("query", name))
        check_text(value, ("query", name))


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "it is not UTF-8"


Handler = Callable[[Context], flask.Response]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> flask.Response:
    """A JSON reply with the exact content type the SDK requires."""
    return flask.Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status=status,
        content_type=_JSON,
        headers=dict(headers or {}),
    )


class FunctionApp:
    """Routes a function's requests to its handlers, with one error mapping."""

    def __init__(
        self,
        function: str,
        handlers: Mapping[str, Handler],
        *,
        container: Callable[[], Container] = get_container,
        before: Iterable[Callable[[Context], None]] = (),
        after: Iterable[Callable[[Context, flask.Response], None]] = (),
        self_limited: Iterable[str] = (),
    ) -> None:
        self.function = function
        self.routes = routes.routes_for(function)
        missing = {r.operation for r in self.routes} - set(handlers)
        # A route without a handler would answer wrongly at runtime: fail at import instead.
        if missing:
            raise RuntimeError(f"{function}: no handler for {', '.join(sorted(missing))}")
        self.handlers = dict(handlers)
        self._container = container
        self._before = tuple(before)
        # The access line goes last, after any hook that adds to ctx.access.
        self._after = (*after, observability.access_log)
        # Operations whose handler calls `ctx.check_limits(estimate)` itself.
        self._self_limited = frozenset(self_limited)
        # functions-framework answers /robots.txt and /favicon.ico itself, an HTML 404
        # without a request id. The function's module runs inside the app context the
        # framework builds, so the framework's own answers go through the one mapping too.
        if flask.has_app_context():
            flask.current_app.register_error_handler(
                werkzeug.exceptions.HTTPException, _framework_answer
            )

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        # First thing: every line from here on carries the request id and trace, and
        # nothing is left over from the last request this (reused) thread served.
        observability.bind_http_request(request, request_id=request_id, function=self.function)
        try:
            return self._handle(request, request_id, started)
        finally:
            # A streamed body runs later in its own copy (observability.deferred_stream).
            observability.clear_request()
            audit.clear_actor()

    def _handle(self, request: flask.Request, request_id: str, started: float) -> flask.Response:
        ctx: Context | None = None
        error: Exception | None = None
        try:
            container = self._container()
            observability.configure_logging(container.settings)
            found = routes.match(request.method, request.path, self.routes)
            if found.route is None:
                raise unrouted(request.method, request.path, found.allowed)
            ctx = Context(
                request=request,
                route=found.route,
                params=found.params,
                container=container,
                request_id=request_id,
                started=started,
            )
            self._admit(ctx)
            _reject_unstorable_query(request)
            for hook in self._before:
                hook(ctx)
            try:
                response = self.handlers[found.route.operation](ctx)
            finally:
                if ctx.budgeted_bytes:  # the handler has relayed the body (or failed)
                    container.body_budget.give(ctx.budgeted_bytes)
                    ctx.budgeted_bytes = 0
        except Exception as exc:
            error = exc
            if ctx is not None and ctx.principal is not None and ctx.decision is None:
                _count_refused(ctx)
            response = self._error(exc, request_id, ctx)
        # One audit line per change the request made, once it is known to have held.
        if response.status_code < 400:
            audit.flush()
        else:
            audit.discard()
        if ctx is not None:
            response.headers.update(ctx.headers)
            for after in self._after:
                after(ctx, response)
        else:
            self._unrouted_access(request, response, request_id, started, error)
        response.headers["X-Request-Id"] = request_id
        if ctx is None or not ctx.body_read:
            _spare_unread_body(request, response)
        return response

    def _unrouted_access(
        self,
        request: flask.Request,
        response: flask.Response,
        request_id: str,
        started: float,
        error: Exception | None,
    ) -> None:
        """The access line of a request that failed before a route matched (404, 405, config)."""
        if error is not None and (not isinstance(error, GatewayError) or error.status >= 500):
            observability.log_exception(error)
        observability.emit_unrouted_access(
            request,
            function=self.function,
            status=response.status_code,
            started=started,
            request_id=request_id,
            error_type=_error_type(error) if error is not None else None,
            response_bytes=response.calculate_content_length(),
        )

    def _admit(self, ctx: Context) -> None:
        """Authenticate, authorize and (for most operations) rate-limit the request."""
        route = ctx.route
        # Health and the API document are open; the batch push route is not public and
        # is guarded by Cloud Run IAM (the push subscription's OIDC token) instead.
        if route.operation in PUBLIC_OPERATIONS or not route.public:
            return
        ctx.principal = authenticate(ctx.request.headers.get("Authorization"), ctx.container.keys)
        principal = ctx.principal
        audit.bind_actor(
            audit.Actor(
                principal.owner_id,
                principal.key_id,
                principal.prefix,
                principal.role,
                ctx.request_id,
            )
        )
        ctx.access.owner = principal.owner_id
        ctx.access.key_prefix = principal.prefix
        authorize(ctx.principal, route.operation)
        if route.operation not in self._self_limited:
            ctx.check_limits()

    def _error(self, exc: Exception, request_id: str, ctx: Context | None) -> flask.Response:
        mapped = error_response(exc, request_id)
        if ctx is not None:
            ctx.access.error_type = _error_type(exc)
            if not isinstance(exc, GatewayError):
                ctx.access.exception = exc
        return flask.Response(
            mapped.body,
            status=mapped.status,
            content_type=mapped.content_type,
            headers=mapped.headers,
        )


def unrouted(method: str, path: str, allowed: tuple[str, ...]) -> ClientError:
    """The answer to a request no route serves: 403 `not_exposed` for an SDK operation the
    gateway deliberately does not serve, else 405 (the path has other methods) or 404.

    The same in the local router and in every function (in the cloud, the load balancer
    sends what its URL map does not route to its default function). It is answered before
    any key is read: it says no more than docs/sdk-surface.md, so a caller without a key
    learns nothing, and a refused SDK call costs no database or Redis round trip. The SDK's
    table is read on the first unrouted request, not at cold start.
    """
    # Imported here: the SDK's table and its rules cost ~1.6 ms to import (`-X importtime`),
    # which a function's cold start need not pay for a request that may never come.
    from shared.surface import not_exposed

    operation = not_exposed(method, path)
    if operation is not None:
        return NotExposed(operation)
    if allowed:
        return MethodNotAllowed(allowed)
    return NotFound(f"no route for {method} {path}", code="route_not_found")


def _count_refused(ctx: Context) -> None:
    """A request refused after its key was known (403, 404, 422 before the handler counted
    it) still counts against the key's rate limit, and its answer carries the RateLimit-*
    headers every authenticated answer carries."""
    # Already over the limit, or Redis away: the refusal stands; headers are set if known.
    with contextlib.suppress(GatewayError):
        ctx.check_limits()


def _framework_answer(exc: werkzeug.exceptions.HTTPException) -> flask.Response:
    """An error functions-framework raised before the function ran, in the gateway's shape."""
    request_id = _request_id(flask.request)
    error: GatewayError
    status = exc.code or 500
    if status in (404, 405):
        allowed = tuple(getattr(exc, "valid_methods", None) or ()) if status == 405 else ()
        error = unrouted(flask.request.method, flask.request.path, allowed)
    else:
        error = (ClientError if status < 500 else GatewayError)(exc.description or "error")
        error.status = status
    mapped = error_response(error, request_id)
    return flask.Response(
        mapped.body,
        status=mapped.status,
        content_type=mapped.content_type,
        headers={**mapped.headers, "X-Request-Id": request_id},
    )


def _spare_unread_body(request: flask.Request, response: flask.Response) -> None:
    """Keep functions-framework from reading a body the gateway did not read.

    The framework reads every request's whole body into memory before a non-streamed
    answer leaves (`read_request`), however large the body claims to be and however
    slowly it comes: a 413 or a 401 would first swallow the body it refuses, and a
    Content-Length that lies would hold a worker thread for ever. The framework leaves
    streamed answers alone, so such an answer is sent as one; gunicorn then drains at
    most a few seconds of what is left, and closes the connection.
    """
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if (request.content_length or chunked) and not response.is_streamed:
        response.response = iter([response.get_data()])


def _error_type(exc: Exception) -> str:
    return exc.code if isinstance(exc, GatewayError) else "internal_error"


def _request_id(request: flask.Request) -> str:
    return request_id(request.headers.get("X-Request-Id", ""))


def request_id(given: str) -> str:
    """The request's id: the caller's `X-Request-Id` if short and plain, else a new one."""
    # Accept a caller's id only if it is short and plain: it ends up in logs.
    if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return "req_" + secrets.token_hex(12)

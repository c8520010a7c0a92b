"""HTTP plumbing every function shares: routing, bodies, replies, errors.

A function's `main.py` builds one `FunctionApp` with its handlers and hands
each request to it. The app matches the route table (404/405 in the gateway's
error shape), builds a `Context`, runs the handler, and maps any exception to
a response through `shared.errors.error_response`, the one place that does.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import flask

from shared import audit, observability, routes, tenants
from shared.auth import PUBLIC_OPERATIONS, authenticate, authorize
from shared.container import Container, get_container
from shared.errors import (
    GatewayError,
    InvalidJSON,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    error_response,
    field_error,
)
from shared.ratelimit import Decision

__all__ = [
    "MAX_JSON_DEPTH",
    "Context",
    "check_storable",
    "FunctionApp",
    "Handler",
    "json_response",
    "not_implemented",
]

_JSON = "application/json"


@dataclass
class Context:
    """One request as a handler sees it."""

    request: flask.Request
    route: routes.Route
    params: dict[str, str]
    container: Container
    request_id: str
    started: float
    # Fields for the request's access line, filled in as the request goes.
    access: dict[str, Any] = field(default_factory=dict)
    # Headers added to whatever response the request ends with.
    headers: dict[str, str] = field(default_factory=dict)
    principal: Any = None
    decision: Decision | None = None
    # The request body as received, once `json_body()` has read it.
    raw_body: bytes = b""
    # True once `json_body()` has read the whole body (no byte of it left unread).
    body_read: bool = False

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object: 415, 413, 400 or 422 otherwise."""
        request = self.request
        mimetype = (request.mimetype or "").lower()
        if mimetype != _JSON:
            raise UnsupportedMediaType("the request body must be application/json")
        limit = self.container.settings.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        raw = request.stream.read(limit + 1)
        self.raw_body = raw
        if len(raw) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        self.body_read = True
        try:
            body = json.loads(raw)
        except RecursionError:
            # Python's parser recurses per nesting level; a deep body must not be a 500.
            raise InvalidJSON(_TOO_DEEP) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidJSON(f"the request body is not valid JSON: {_json_reason(exc)}") from None
        check_storable(body)
        if not isinstance(body, dict):
            raise ValidationFailed(
                [field_error(("body",), "Input should be a valid dictionary", "dict_type")]
            )
        return body

    def query(self, name: str) -> str | None:
        return self.request.args.get(name)

    @property
    def owner(self) -> str:
        """The caller's tenant: every query a handler runs is scoped to it."""
        return str(self.principal.owner_id)

    def check_limits(self, estimate: int = 0) -> Decision:
        """Count this request against its key's rate limit and reserve tokens of its budget.

        Called once per request: by the app for most operations, by the handler
        itself (after validating the body) for the ones that spend tokens.
        """
        principal = self.principal
        # The key's limits within its tenant's: a key narrows them, never widens them.
        limit, budget = tenants.effective_limits(principal, self.container.settings)
        decision = self.container.limiter.check(
            principal.key_id, principal.owner_id, limit, budget, estimate
        )
        self.headers.update(decision.headers())
        self.access["rate_limit"] = decision.outcome
        self.decision = decision
        decision.raise_if_rejected()
        return decision


# Deeper bodies are refused before anything walks them recursively (the input policy,
# json.dumps on the way to Mistral and into PostgreSQL, the reads), all of which would
# hit Python's recursion limit near 1,000 levels. Tool schemas nest a dozen levels.
MAX_JSON_DEPTH = 100
_TOO_DEEP = f"the request body nests deeper than {MAX_JSON_DEPTH} levels"


def check_storable(body: Any, where: tuple[str | int, ...] = ("body",)) -> None:
    """400 beyond MAX_JSON_DEPTH; 422 for a string or key PostgreSQL cannot store: one
    with a NUL character, or a lone surrogate (`\\ud800` is valid JSON but not UTF-8).
    Either would otherwise be answered by Mistral, then fail to be stored."""
    # loc grows by one per level: the value itself is level 1.
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(body, where)]
    while pending:
        value, loc = pending.pop()
        if isinstance(value, dict | list) and len(loc) > MAX_JSON_DEPTH:
            raise InvalidJSON(_TOO_DEEP)
        if isinstance(value, str):
            _check_text(value, loc)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, loc)
                pending.append((item, (*loc, key)))
        elif isinstance(value, list):
            pending.extend((item, (*loc, i)) for i, item in enumerate(value))


_NUL_MESSAGE = "NUL characters (\\u0000) are not accepted"
_SURROGATE_MESSAGE = "lone surrogates (\\ud800-\\udfff) are not valid Unicode text"


def _check_text(value: str, loc: tuple[str | int, ...]) -> None:
    if "\x00" in value:
        raise ValidationFailed([field_error(loc, _NUL_MESSAGE, "string")])
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed([field_error(loc, _SURROGATE_MESSAGE, "string")]) from None


def _reject_unstorable_query(request: flask.Request) -> None:
    """422 for a query parameter PostgreSQL cannot compare (NUL, lone surrogate)."""
    for name, value in request.args.items(multi=True):
        _check_text(name, ("query", name))
        _check_text(value, ("query", name))


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
                if found.allowed:
                    raise MethodNotAllowed(found.allowed)
                raise NotFound(f"no route for {request.method} {request.path}")
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
            response = self.handlers[found.route.operation](ctx)
        except Exception as exc:
            error = exc
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
        ctx.access["owner"] = ctx.principal.owner_id
        ctx.access["key_prefix"] = ctx.principal.prefix
        authorize(ctx.principal, route.operation)
        if route.operation not in self._self_limited:
            ctx.check_limits()

    def _error(self, exc: Exception, request_id: str, ctx: Context | None) -> flask.Response:
        mapped = error_response(exc, request_id)
        if ctx is not None:
            ctx.access["error_type"] = _error_type(exc)
            if not isinstance(exc, GatewayError):
                ctx.access["exception"] = exc
        return flask.Response(
            mapped.body,
            status=mapped.status,
            content_type=mapped.content_type,
            headers=mapped.headers,
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
    return exc.type if isinstance(exc, GatewayError) else "internal_error"


def _request_id(request: flask.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    # Accept a caller's id only if it is short and plain: it ends up in logs.
    if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return "req_" + secrets.token_hex(12)


def not_implemented(ctx: Context) -> flask.Response:
    """Placeholder for a route whose issue is still open: an honest 501."""
    raise _NotBuilt(f"{ctx.route.operation} is not available yet")


class _NotBuilt(GatewayError):
    status = 501
    type = "not_implemented"

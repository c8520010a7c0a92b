"""The gateway's errors: one tree, the HTTP status on each class, one mapping.

Every error the gateway makes itself has Mistral's error body (wire contract 8):

    {"object": "error", "message": "...", "type": <category>, "param": null,
     "code": <cause>, "request_id": "..."}

`type` is the category, as Mistral's: `invalid_request_error` for the caller's
mistakes, `authentication_error` (401), `permission_error` (403),
`rate_limit_error` (429), `api_error` for the gateway's or Mistral's failures.
`code` is stable and machine-readable, one per cause (the README lists them);
a raise may name a narrower cause than its class's (`code=`).

    GatewayError                      500 api_error / internal_error
    ├── ConfigError                   (startup only: bad or missing settings)
    ├── ClientError                   4xx invalid_request_error, the caller's to fix
    │   ├── BadRequest                400 bad_request
    │   │   └── InvalidJSON           400 invalid_json
    │   ├── Unauthorized              401 unauthorized
    │   ├── Forbidden                 403 forbidden
    │   │   └── OutsideAllowList      403 forbidden, `param` names the key's allow-list
    │   ├── NotExposed                403 not_exposed: an SDK operation the gateway never serves
    │   ├── NotFound                  404 not_found (route_not_found for no route)
    │   ├── MethodNotAllowed          405 method_not_allowed
    │   ├── Conflict                  409 conflict
    │   ├── PayloadTooLarge           413 payload_too_large
    │   ├── UnsupportedMediaType      415 unsupported_media_type
    │   ├── ValidationFailed          422 validation_error (with a `detail` list)
    │   └── RateLimited               429 rate_limited (+ Retry-After)
    ├── UpstreamError                 Mistral failed us
    │   ├── UpstreamRejected          Mistral's own 4xx: its status and body, verbatim
    │   ├── UpstreamUnavailable       502 upstream_unavailable
    │   ├── UpstreamTimeout           504 upstream_timeout
    │   └── CircuitOpen               503 circuit_open (+ Retry-After)
    └── ServiceUnavailable            503 service_unavailable (database or Redis down)

Third-party exceptions are translated where they are raised (`raise ... from
exc`); `error_response` is the one place that turns any exception into the
JSON body the caller sees. Bodies never carry stack traces, SQL or secrets:
an unexpected exception becomes a bare 500 with the request id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CODES",
    "ERROR_CATEGORIES",
    "BadRequest",
    "CircuitOpen",
    "ClientError",
    "ConfigError",
    "Conflict",
    "ErrorResponse",
    "Forbidden",
    "GatewayError",
    "InvalidJSON",
    "MethodNotAllowed",
    "NotExposed",
    "NAME_MAX",
    "NOT_BLANK",
    "NotFound",
    "OutsideAllowList",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "UniqueViolation",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "ValidationFailed",
    "WHITESPACE",
    "error_response",
    "extra_field_problems",
    "field_error",
    "text_field_problems",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status = 500
    # Mistral's category, the body's `type`.
    category = "api_error"
    # The cause, stable and machine-readable: the body's `code`.
    code = "internal_error"

    def __init__(
        self,
        message: str = "internal error",
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "object": "error",
            "message": self.message,
            "type": self.category,
            "param": None,
            "code": self.code,
        }


class ConfigError(GatewayError):
    code = "config_error"


class ClientError(GatewayError):
    status = 400
    category = "invalid_request_error"
    code = "bad_request"


class BadRequest(ClientError):
    pass


class InvalidJSON(BadRequest):
    code = "invalid_json"


class Unauthorized(ClientError):
    status = 401
    category = "authentication_error"
    code = "unauthorized"

    def __init__(self, message: str = "a valid gateway API key is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="gateway"'})


class Forbidden(ClientError):
    status = 403
    category = "permission_error"
    code = "forbidden"


class OutsideAllowList(Forbidden):
    """The key's allow-list (`allowed_models`, `allowed_agents`) does not hold what was asked."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param

    def body(self) -> dict[str, Any]:
        return {**super().body(), "param": self.param}


class NotExposed(ClientError):
    """An operation of Mistral's SDK the gateway deliberately does not serve
    (docs/sdk-surface.md). A 403 with the caller's-mistake category, not
    `permission_error`: no key, whatever its role, may call it through the gateway."""

    status = 403
    code = "not_exposed"

    def __init__(self, operation: str) -> None:
        super().__init__(f"{operation} is not exposed by this gateway (see docs/sdk-surface.md)")
        self.operation = operation


class NotFound(ClientError):
    """404; `NotFound.of(what, ident)` words a missing object the one way Mistral does."""

    status = 404
    code = "not_found"

    @classmethod
    def of(cls, what: str, ident: object) -> NotFound:
        return cls(f"{what} {str(ident)!r} not found")


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"method not allowed; this path allows {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class Conflict(ClientError):
    status = 409
    code = "conflict"


class UniqueViolation(Conflict):
    """A write PostgreSQL refused as a duplicate of a row (SQLSTATE 23505); `shared.db`
    raises it, so no caller reads the database's error codes."""

    def __init__(self, message: str = "the record conflicts with another; try again") -> None:
        super().__init__(message)


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


def field_error(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    """One entry of a 422 `detail` list, in the form the SDK parses."""
    return {"loc": list(loc), "msg": msg, "type": kind}


# The characters Python's str.isspace() (so str.strip()) treats as white space, spelled out
# for JSON Schema patterns (regex `\s` differs between engines: U+001C-U+001F, U+FEFF).
WHITESPACE = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# A JSON Schema pattern for the text `.strip()` does not empty: what the blank checks allow.
NOT_BLANK = f"[^{WHITESPACE}]"
# The longest name (of a key, a tenant) `text_field_problems` takes by default.
NAME_MAX = 200


def text_field_problems(
    body: Mapping[str, Any], name: str, *, required: bool, max_length: int | None = None
) -> list[dict[str, Any]]:
    """The problems of a body's non-blank string field of at most `max_length` characters
    (default NAME_MAX)."""
    max_length = NAME_MAX if max_length is None else max_length
    if name not in body:
        return [field_error(("body", name), "Field required", "missing")] if required else []
    value = body[name]
    if not isinstance(value, str):
        return [field_error(("body", name), "Input should be a valid string", "string_type")]
    if not value.strip() or len(value) > max_length:
        msg = f"String should have between 1 and {max_length} characters"
        return [field_error(("body", name), msg, "string_length")]
    return []


def extra_field_problems(body: Mapping[str, Any], allowed: set[str]) -> list[dict[str, Any]]:
    """One problem per body field not in `allowed` (a misspelt field is never ignored)."""
    return [
        field_error(("body", name), "Extra inputs are not permitted", "extra_forbidden")
        for name in body
        if name not in allowed
    ]


class ValidationFailed(ClientError):
    """422 with a `detail` list: the only error body the SDK parses into a type."""

    status = 422
    code = "validation_error"

    def __init__(self, detail: list[dict[str, Any]], message: str | None = None) -> None:
        super().__init__(message or "; ".join(_describe(d) for d in detail))
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {**super().body(), "detail": self.detail}


def _describe(entry: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in entry["loc"])
    return f"{where}: {entry['msg']}"


class RateLimited(ClientError):
    status = 429
    category = "rate_limit_error"
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        retry_after_s: float,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        retry = str(max(1, int(retry_after_s + 0.999)))
        super().__init__(message, headers={**(headers or {}), "Retry-After": retry}, code=code)


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"


class UpstreamRejected(UpstreamError):
    """Mistral answered 4xx: the caller gets the same status and body."""

    code = "upstream_rejected"

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"Mistral answered {status}")
        self.status = status
        self.raw_body = body
        self.content_type = content_type


class UpstreamUnavailable(UpstreamError):
    status = 502
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class CircuitOpen(UpstreamError):
    status = 503
    code = "circuit_open"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            "Mistral is failing; the gateway's circuit breaker is open",
            headers={"Retry-After": str(max(1, int(retry_after_s + 0.999)))},
        )


class ServiceUnavailable(GatewayError):
    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, retry_after_s: int = 2, code: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)}, code=code)


# Mistral's categories, the body's `type`.
ERROR_CATEGORIES = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "api_error",
)

# Every `code` the gateway's error bodies carry, with its status and cause: the README's
# table and the API document's `Error.code` enum are this list (a test keeps them equal).
# A status of None: the code appears only in a batch's or a batch item's `error`.
CODES: dict[str, tuple[int | None, str]] = {
    "bad_request": (400, "The request cannot be read (a Content-Length that is not a length)."),
    "invalid_json": (400, "The body is not JSON, or nests deeper than 100 levels."),
    "invalid_page_token": (400, "A `page_token` the gateway did not hand out."),
    "unauthorized": (401, "No key, a malformed Authorization header, or an unknown key."),
    "forbidden": (403, "The key's role may not call the operation."),
    "not_exposed": (403, "An SDK operation the gateway does not serve (docs/sdk-surface.md)."),
    "not_found": (404, "No such object for the caller's tenant (another tenant's is the same)."),
    "route_not_found": (404, "No route has this path."),
    "method_not_allowed": (405, "The path exists; the method does not (see `Allow`)."),
    "conflict": (409, "The object changed meanwhile; try again."),
    "agent_busy": (409, "Another change to this agent is in progress (see `Retry-After`)."),
    "conversation_archived": (409, "The conversation is archived; unarchive it to continue."),
    "idempotency_in_progress": (409, "A request with this Idempotency-Key is still running."),
    "key_revoked": (409, "A revoked key cannot be rotated."),
    "payload_too_large": (413, "The body is larger than the limit."),
    "unsupported_media_type": (415, "The body is not `application/json`."),
    "validation_error": (422, "A field is missing or wrong: `detail` names each."),
    "rate_limited": (429, "The key's request rate limit (see `Retry-After`)."),
    "token_budget_exceeded": (429, "The key's token budget (see `Retry-After`)."),
    "internal_error": (500, "A fault in the gateway; the request id finds it in the logs."),
    "config_error": (500, "The function's settings are wrong (its logs name each)."),
    "not_implemented": (501, "The operation is not available yet."),
    "upstream_unavailable": (502, "Mistral failed or answered something unreadable."),
    "backend_unavailable": (502, "The function that owns the route did not answer."),
    "service_unavailable": (503, "The database or Redis is unavailable (see `Retry-After`)."),
    "circuit_open": (503, "Mistral is failing; the circuit breaker is open."),
    "body_budget_full": (
        503,
        "The instance holds as many large bodies as `MEDIA_BODY_BUDGET_BYTES` allows (see"
        " `Retry-After`).",
    ),
    "upstream_timeout": (504, "Mistral did not answer in time."),
    "upstream_error": (502, "Mistral failed us in another way."),
    "upstream_rejected": (None, "A batch item Mistral refused (its status and body beside)."),
    "malformed_message": (None, "A batch message that is not a valid batch document."),
    "malformed_delivery": (None, "A batch delivery that is not a Pub/Sub message."),
    "batch_conflict": (None, "A batch id already used by a different batch."),
    "unknown_owner": (None, "A batch message for an owner that has no active key."),
    "items_failed": (None, "A batch some of whose items failed (each item's `error` says why)."),
    "reconcile_failed": (None, "An item whose earlier attempt Mistral could not be asked about."),
    "expired": (None, "A batch message published longer ago than `BATCH_MAX_AGE_S`."),
}


@dataclass(frozen=True)
class ErrorResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


# A gateway key (`mgw_` and 43 URL-safe characters, shared.tenancy.keys): an error message that
# quotes what the caller sent (a path id, a query value) must never hand a secret back.
_BEARER_SECRET = re.compile(r"mgw_[A-Za-z0-9_-]{43}[A-Za-z0-9_-]*")
_HIDDEN_SECRET = "mgw_[REDACTED]"  # noqa: S105 (the placeholder, not a secret)


def error_response(exc: BaseException, request_id: str = "") -> ErrorResponse:
    """The one mapping from any exception to what the caller receives."""
    if isinstance(exc, UpstreamRejected):
        return ErrorResponse(
            exc.status, exc.raw_body, exc.content_type or "application/json", exc.headers
        )
    if not isinstance(exc, GatewayError):
        exc = GatewayError()
    body = exc.body()
    if request_id:
        body["request_id"] = request_id
    text = _BEARER_SECRET.sub(_HIDDEN_SECRET, json.dumps(body))
    return ErrorResponse(exc.status, text.encode(), headers=exc.headers)

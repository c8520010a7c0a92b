"""The gateway's errors: one tree, the HTTP status on each class, one mapping.

    GatewayError                      500 internal_error
    ├── ConfigError                   (startup only: bad or missing settings)
    ├── ClientError                   4xx, the caller's to fix
    │   ├── BadRequest                400 invalid_request_error
    │   │   └── InvalidJSON           400 invalid_json
    │   ├── Unauthorized              401 unauthorized
    │   ├── Forbidden                 403 forbidden
    │   │   └── OutsideAllowList      403 forbidden, `param` names the key's allow-list
    │   ├── NotFound                  404 not_found
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
from dataclasses import dataclass, field
from typing import Any

__all__ = [
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
    "NotFound",
    "OutsideAllowList",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "ValidationFailed",
    "error_response",
    "field_error",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status = 500
    type = "internal_error"

    def __init__(self, message: str = "internal error", *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"object": "error", "type": self.type, "message": self.message, "param": None}


class ConfigError(GatewayError):
    type = "config_error"


class ClientError(GatewayError):
    status = 400
    type = "invalid_request_error"


class BadRequest(ClientError):
    pass


class InvalidJSON(BadRequest):
    type = "invalid_json"


class Unauthorized(ClientError):
    status = 401
    type = "unauthorized"

    def __init__(self, message: str = "a valid gateway API key is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="gateway"'})


class Forbidden(ClientError):
    status = 403
    type = "forbidden"


class OutsideAllowList(Forbidden):
    """The key's allow-list (`allowed_models`, `allowed_agents`) does not hold what was asked."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param

    def body(self) -> dict[str, Any]:
        return {**super().body(), "param": self.param}


class NotFound(ClientError):
    status = 404
    type = "not_found"


class MethodNotAllowed(ClientError):
    status = 405
    type = "method_not_allowed"

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"method not allowed; this path allows {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class Conflict(ClientError):
    status = 409
    type = "conflict"


class PayloadTooLarge(ClientError):
    status = 413
    type = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    type = "unsupported_media_type"


def field_error(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    """One entry of a 422 `detail` list, in the form the SDK parses."""
    return {"loc": list(loc), "msg": msg, "type": kind}


class ValidationFailed(ClientError):
    """422 with a `detail` list: the only error body the SDK parses into a type."""

    status = 422
    type = "validation_error"

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
    type = "rate_limited"

    def __init__(self, message: str, retry_after_s: float, headers: dict[str, str] | None = None):
        retry = str(max(1, int(retry_after_s + 0.999)))
        super().__init__(message, headers={**(headers or {}), "Retry-After": retry})


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"


class UpstreamRejected(UpstreamError):
    """Mistral answered 4xx: the caller gets the same status and body."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"Mistral answered {status}")
        self.status = status
        self.raw_body = body
        self.content_type = content_type


class UpstreamUnavailable(UpstreamError):
    status = 502
    type = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "upstream_timeout"


class CircuitOpen(UpstreamError):
    status = 503
    type = "circuit_open"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            "Mistral is failing; the gateway's circuit breaker is open",
            headers={"Retry-After": str(max(1, int(retry_after_s + 0.999)))},
        )


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


@dataclass(frozen=True)
class ErrorResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


# A gateway key (`mgw_` and 43 URL-safe characters, shared.keys): an error message that
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

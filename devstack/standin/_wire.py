"""Wire-level building blocks shared by the stand-in's modules: ids, timestamps, replies, errors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = "application/json"
SSE = "text/event-stream"

# One SSE frame before serialisation: (event name, data). The data is a JSON-ready object, or
# already-rendered text when a fault deliberately sends something that is not JSON.
Event = tuple[str, Any]


def new_id(prefix: str) -> str:
    """A URL-safe id: the SDK puts path ids into URLs without percent-encoding them."""
    return f"{prefix}_{os.urandom(12).hex()}"


def now() -> str:
    """The current time as RFC 3339 UTC with `Z`; naive or offset forms confuse some clients."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Reply:
    """What an operation answers, before the transport renders it (and faults may bend it).

    Exactly one body form is used: `events` for SSE, else `raw` bytes, else `payload` as JSON;
    `payload` None with no `raw` means no body at all (the 204 deletes).
    """

    status: int
    payload: Any = None
    events: list[Event] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_payload(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """The error body shape of Mistral's public API (the SDK keeps it verbatim in SDKError)."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


class ApiError(Exception):
    """An error answer raised from deep inside an operation and turned into a Reply at the top."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload

    def reply(self) -> Reply:
        return Reply(self.status, self.payload)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, error_payload(f"{what} {ident!r} not found", "not_found"))


def bad_request(message: str, code: str) -> ApiError:
    return ApiError(400, error_payload(message, code))


def unprocessable(problems: list[dict[str, Any]]) -> ApiError:
    """A 422 in the list form: the SDK fails to parse a `detail` that is a plain string."""
    return ApiError(422, {"detail": problems})

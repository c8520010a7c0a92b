"""How a Pub/Sub message reaches the batch function, in its three wire forms.

    push        {"message": {"data", "messageId", "publishTime", "attributes"},
                 "subscription": ...}  as the body (Terraform's push subscription)
    binary      the same body, with `ce-id`, `ce-type`, `ce-source`, `ce-specversion`
                headers (an Eventarc trigger delivering over HTTP)
    structured  `Content-Type: application/cloudevents+json`: a CloudEvent whose
                `data` (or `data_base64`) is that body

and, for a `@functions_framework.cloud_event` entry point, the CloudEvent the
framework already parsed. All four give one `Envelope`. Anything that is not a
Pub/Sub delivery raises `BadEnvelope`: it is recorded and acknowledged, since
Pub/Sub would redeliver it unchanged forever.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MESSAGE_PUBLISHED",
    "BadEnvelope",
    "Envelope",
    "envelope_from_cloudevent",
    "envelope_from_http",
    "parse_time",
]

# The CloudEvent type Eventarc gives a Pub/Sub message.
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
_STRUCTURED = "application/cloudevents+json"
# RFC 3339 as Pub/Sub writes it: up to nanoseconds, which fromisoformat does not take.
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


class BadEnvelope(Exception):
    """Not a Pub/Sub delivery at all; `digest` keys its record."""

    def __init__(self, message: str, raw: bytes, mode: str) -> None:
        super().__init__(message)
        self.message = message
        self.mode = mode
        self.digest = hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Envelope:
    """One delivery of one Pub/Sub message."""

    message_id: str
    # The message's data as published: base64 text (None if the message had none).
    data: str | None
    publish_time: datetime | None
    mode: str
    attributes: dict[str, str] = field(default_factory=dict)
    subscription: str | None = None


def envelope_from_http(headers: Mapping[str, str], body: bytes) -> Envelope:
    """The envelope of an HTTP delivery: push body, binary or structured CloudEvent.

    `headers` looks names up as HTTP does, whatever their case (werkzeug's do).
    """
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type == _STRUCTURED:
        event = _json_object(body, "structured", "the CloudEvent")
        _check_type(event.get("type"), body, "structured")
        data = event.get("data")
        if data is None and isinstance(event.get("data_base64"), str):
            data = _json_object(
                _b64(event["data_base64"], body, "structured"), "structured", "data"
            )
        return _from_pubsub(data, body, "structured", event.get("id"), event.get("time"))
    if headers.get("ce-id") is not None and headers.get("ce-specversion") is not None:
        _check_type(headers.get("ce-type"), body, "binary")
        data = _json_object(body, "binary", "the CloudEvent data")
        return _from_pubsub(data, body, "binary", headers.get("ce-id"), headers.get("ce-time"))
    return _from_pubsub(_json_object(body, "push", "the push body"), body, "push", None, None)


def envelope_from_cloudevent(attributes: Mapping[str, Any], data: Any) -> Envelope:
    """The envelope of a CloudEvent functions-framework parsed (`@cloud_event` functions)."""
    raw = json.dumps(
        {"attributes": dict(attributes), "data": data}, default=str, sort_keys=True
    ).encode()
    _check_type(attributes.get("type"), raw, "cloudevent")
    if isinstance(data, bytes | str):
        data = _json_object(data.encode() if isinstance(data, str) else data, "cloudevent", "data")
    return _from_pubsub(data, raw, "cloudevent", attributes.get("id"), attributes.get("time"))


def _check_type(kind: Any, raw: bytes, mode: str) -> None:
    if kind is not None and kind != MESSAGE_PUBLISHED:
        raise BadEnvelope(f"unsupported CloudEvent type {str(kind)[:100]!r}", raw, mode)


def _json_object(raw: bytes, mode: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadEnvelope(f"{what} is not valid JSON", raw, mode) from None
    if not isinstance(value, dict):
        raise BadEnvelope(f"{what} is not a JSON object", raw, mode)
    return value


def _b64(text: str, raw: bytes, mode: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadEnvelope("data_base64 is not base64", raw, mode) from None


def _from_pubsub(data: Any, raw: bytes, mode: str, event_id: Any, event_time: Any) -> Envelope:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise BadEnvelope("no Pub/Sub `message` object in the delivery", raw, mode)
    message: dict[str, Any] = data["message"]
    message_id = _first(message, "messageId", "message_id") or event_id
    if not isinstance(message_id, str) or not message_id:
        raise BadEnvelope("the Pub/Sub message has no messageId", raw, mode)
    payload = message.get("data")
    attributes = message.get("attributes")
    subscription = data.get("subscription")
    return Envelope(
        message_id=message_id,
        data=payload if isinstance(payload, str) else None,
        publish_time=parse_time(_first(message, "publishTime", "publish_time") or event_time),
        mode=mode,
        attributes=(
            {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        ),
        subscription=subscription if isinstance(subscription, str) else None,
    )


def _first(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if mapping.get(name) is not None:
            return mapping[name]
    return None


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (nanoseconds allowed), or None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00"), 1))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""A metered pass-through request as the domain sees it: which operation, the bytes to
relay, and the few fields the gateway reads from them (model, agent, stream)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.errors import UnsupportedMediaType, ValidationFailed, field_error

__all__ = ["MEDIA_OPERATIONS", "MULTIPART", "Passthrough", "build_passthrough", "form_fields"]

MULTIPART = "multipart/form-data"
_JSON = "application/json"
# Operations whose body names no model Mistral requires (an agent answers; OCR's and
# speech's model may be null or absent).
_NO_MODEL = frozenset({"agents.complete", "ocr.process", "audio.speech.complete"})
_MULTIPART_OPERATIONS = frozenset({"audio.transcriptions.complete"})
# The calls whose body may carry media inline (a document or image as a data URL, audio
# as a form's file), so may be larger than MAX_BODY_BYTES (`Context.bytes_body`).
MEDIA_OPERATIONS = frozenset(
    {
        "chat.complete",
        "agents.complete",
        "classifiers.moderate_chat",
        "classifiers.classify_chat",
        "ocr.process",
        "audio.transcriptions.complete",
    }
)
# Operations Mistral streams when asked; any other's `stream` is Mistral's to judge.
_STREAMING = frozenset(
    {
        "chat.complete",
        "fim.complete",
        "agents.complete",
        "audio.transcriptions.complete",
        "audio.speech.complete",
    }
)
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
# A form field longer than this is a file or data, never one the gateway reads.
_MAX_FIELD = 4096


@dataclass(frozen=True)
class Passthrough:
    """A validated pass-through call: `raw` goes to Mistral as sent, under `content_type`."""

    operation: str
    path: str
    raw: bytes
    content_type: str
    # The JSON body, or a multipart body's text fields.
    fields: dict[str, Any] = field(default_factory=dict)
    stream: bool = False

    @property
    def model(self) -> str | None:
        value = self.fields.get("model")
        return value if isinstance(value, str) else None

    @property
    def file_ids(self) -> tuple[str, ...]:
        """The Mistral files the call names (`{"type": "file", "file_id"}` chunks of OCR
        documents and chat messages, a transcription's `file_id`): each must be one of the
        caller's tenant's files (`shared.resources.check_owned`)."""
        found: list[str] = []
        pending: list[Any] = [self.fields]
        while pending:
            item = pending.pop()
            if isinstance(item, dict):
                named = item.get("file_id")
                kind = item.get("type")
                if isinstance(named, str) and (kind == "file" or item is self.fields):
                    found.append(named)
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
        return tuple(dict.fromkeys(found))

    @property
    def agent_id(self) -> str | None:
        value = self.fields.get("agent_id")
        return value if isinstance(value, str) and self.operation == "agents.complete" else None


def build_passthrough(
    operation: str,
    path: str,
    raw: bytes,
    content_type: str,
    body: dict[str, Any] | None,
) -> Passthrough:
    """Validate what the gateway reads of a call (422 naming every problem); the rest of
    the body is Mistral's to judge. `body` is the parsed JSON body, None for multipart."""
    multipart = operation in _MULTIPART_OPERATIONS
    if multipart:
        if not content_type.lower().startswith(MULTIPART):
            raise UnsupportedMediaType("the request body must be multipart/form-data")
        fields: dict[str, Any] = form_fields(raw, content_type)
        stream = str(fields.get("stream", "")).lower() == "true"
    else:
        fields = body or {}
        stream = fields.get("stream") is True
    problems = []
    for name in ("model", "agent_id"):
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(
                field_error(("body", name), "Input should be a valid string", "string_type")
            )
    # The SDK's request models take `"stream": null` as not streaming. An operation that
    # does not stream has no `stream` field: any value of it is Mistral's to ignore.
    streamable = operation in _STREAMING
    if streamable and not multipart and not isinstance(fields.get("stream", False), bool | None):
        problems.append(
            field_error(("body", "stream"), "Input should be a valid boolean", "bool_type")
        )
    required = "agent_id" if operation == "agents.complete" else "model"
    needed = operation not in _NO_MODEL or required == "agent_id"
    if needed and fields.get(required) is None:
        problems.append(field_error(("body", required), "Field required", "missing"))
    if problems:
        raise ValidationFailed(problems)
    return Passthrough(
        operation=operation,
        path=path,
        raw=raw,
        content_type=content_type if multipart else _JSON,
        fields=fields,
        stream=stream and streamable,
    )


def form_fields(raw: bytes, content_type: str) -> dict[str, str]:
    """The short text fields of a multipart/form-data body (files are skipped): the body
    itself is relayed unchanged, these are only read."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise ValidationFailed(
            [
                field_error(
                    ("header", "content-type"), "multipart body without a boundary", "value_error"
                )
            ]
        )
    delimiter = b"--" + found.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    for part in raw.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep or b"filename=" in head.lower():
            continue
        name = _NAME.search(head)
        value = value.removesuffix(b"\r\n")
        if name is None or len(value) > _MAX_FIELD:
            continue
        try:
            fields[name.group(1).decode()] = value.decode()
        except UnicodeDecodeError:
            continue
    return fields

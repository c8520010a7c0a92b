"""The batch message: one JSON document in the Pub/Sub message's data.

    {"batch_id": "nightly-2025-06-01",       optional; default "msg_<messageId>"
     "owner": "tenant-a",                     the tenant the conversations belong to
     "items": [{"custom_id": "row-1",         the caller's id, unique in the batch
                "model": "mistral-small-latest" | "agent_id": "ag_...",
                "inputs": "..." | [entries],
                "completion_args": {...}, "metadata": {...}, ...}]}

An item is the body of a conversation start (`POST /v1/conversations`) plus its
`custom_id`; fields the gateway does not check pass through to Mistral, as for
the start function. `schemas/batch-message.schema.json` is the same contract as
a JSON Schema; a test keeps the two in step.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from shared import jsonsafe
from shared.batch._envelope import Envelope
from shared.errors import InvalidJSON, ValidationFailed, field_error
from shared.jsonsafe import check_storable

__all__ = [
    "ITEM_FIELDS",
    "MARKER_KEY",
    "MAX_DATA_BYTES",
    "MAX_ITEMS",
    "MESSAGE_FIELDS",
    "BatchMessage",
    "Item",
    "Rejection",
    "derived_batch_id",
    "parse_message",
]

# The metadata key that ties a conversation at Mistral to its batch item, so a
# worker taking over an item can find a conversation its predecessor started.
MARKER_KEY = "gateway_batch_item"
MAX_ITEMS = 10_000
# Pub/Sub's own limit on a message's data.
MAX_DATA_BYTES = 10_000_000
_MAX_OWNER = 128
_MAX_CUSTOM_ID = 256
# Problems listed in a rejection; a message with thousands of bad items needs no more.
_MAX_DETAIL = 50

MESSAGE_FIELDS = ("batch_id", "owner", "items")
# Item fields the gateway checks; any other passes through to Mistral unchanged.
ITEM_FIELDS: dict[str, tuple[type, ...]] = {
    "custom_id": (str,),
    "agent_id": (str,),
    "model": (str,),
    "inputs": (str, list),
    "completion_args": (dict,),
    "metadata": (dict,),
    "instructions": (str,),
    "tools": (list,),
    "agent_version": (int, str),
    "name": (str,),
    "description": (str,),
    "handoff_execution": (str,),
    "guardrails": (list,),
    "stream": (bool,),
    "store": (bool,),
}
# A batch id is one URL path segment (GET /gateway/v1/batches/{batch_id}).
_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,120}")
# Prefixes of the ids the gateway derives itself; a publisher's id may not take them.
_RESERVED = ("msg_", "bad_")


class Rejection(Exception):
    """Why a message is refused: recorded as a `rejected` batch and acknowledged."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        batch_id: str,
        owner: str | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.batch_id = batch_id
        self.owner = owner
        self.detail = detail

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": "invalid_request_error",
            "code": self.kind,
            "message": self.message,
        }
        if self.detail:
            error["detail"] = self.detail
        return error


@dataclass(frozen=True)
class Item:
    idx: int
    custom_id: str
    # The item as published (stored as `batch_items.request`).
    request: dict[str, Any]

    def marker(self, batch_id: str) -> str:
        return f"{batch_id}:{self.idx}"

    def start_body(self, batch_id: str) -> dict[str, Any]:
        """The body of the item's conversation start: a fresh copy, marked with the item."""
        body = copy.deepcopy({k: v for k, v in self.request.items() if k != "custom_id"})
        body["metadata"] = {**(body.get("metadata") or {}), MARKER_KEY: self.marker(batch_id)}
        return body


@dataclass(frozen=True)
class BatchMessage:
    batch_id: str
    owner: str
    items: tuple[Item, ...]
    # True when the batch id is the publisher's, not derived from the message id.
    chosen_id: bool


def derived_batch_id(message_id: str) -> str:
    """`msg_<messageId>`: Pub/Sub message ids are digits; anything else is hashed."""
    if _MESSAGE_ID.fullmatch(message_id):
        return "msg_" + message_id
    return "msg_" + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def parse_message(envelope: Envelope) -> BatchMessage:
    """The message's document, checked; `Rejection("malformed_message")` naming every problem."""
    derived = derived_batch_id(envelope.message_id)
    document = _document(envelope.data, derived)
    problems: list[dict[str, Any]] = []
    for name in document:
        if name not in MESSAGE_FIELDS:
            problems.append(field_error(("data", name), "Extra inputs are not permitted", "extra"))
    owner = _owner(document.get("owner"), problems)
    batch_id = _batch_id(document.get("batch_id"), problems)
    items = _items(document.get("items"), problems)
    if problems:
        raise Rejection(
            "malformed_message",
            "the batch message is malformed: " + "; ".join(_describe(p) for p in problems[:3]),
            batch_id=batch_id or derived,
            owner=owner,
            detail=problems[:_MAX_DETAIL],
        )
    assert owner is not None
    return BatchMessage(batch_id or derived, owner, tuple(items), batch_id is not None)


def _document(data: str | None, derived: str) -> dict[str, Any]:
    def malformed(message: str, loc: tuple[str, ...], kind: str) -> Rejection:
        return Rejection(
            "malformed_message",
            message,
            batch_id=derived,
            detail=[field_error(loc, message, kind)],
        )

    if data is None:
        raise malformed("the Pub/Sub message has no data", ("message", "data"), "missing")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise malformed("the message data is not base64", ("message", "data"), "base64") from None
    if len(raw) > MAX_DATA_BYTES:
        raise malformed(
            f"the message data is larger than {MAX_DATA_BYTES} bytes", ("data",), "too_large"
        )
    try:
        document = jsonsafe.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise malformed("the message data is not valid JSON", ("data",), "json_invalid") from None
    try:
        # What the start function refuses in a body (non-finite numbers, NUL, too deep).
        check_storable(document, ("data",))
    except ValidationFailed as exc:
        raise Rejection(
            "malformed_message", exc.message, batch_id=derived, detail=exc.detail
        ) from None
    except InvalidJSON as exc:
        raise malformed(exc.message, ("data",), "json_invalid") from None
    if not isinstance(document, dict):
        raise malformed("the message data should be a JSON object", ("data",), "dict_type")
    return document


def _owner(value: Any, problems: list[dict[str, Any]]) -> str | None:
    if value is None:
        problems.append(field_error(("data", "owner"), "Field required", "missing"))
    elif not isinstance(value, str) or not value.strip() or len(value) > _MAX_OWNER:
        problems.append(
            field_error(
                ("data", "owner"),
                f"Input should be a non-empty string of at most {_MAX_OWNER} characters",
                "string_type",
            )
        )
    else:
        return value
    return None


def _batch_id(value: Any, problems: list[dict[str, Any]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _BATCH_ID.fullmatch(value) or value.startswith(_RESERVED):
        problems.append(
            field_error(
                ("data", "batch_id"),
                "Input should be 1 to 128 characters of letters, digits and . _ : -, starting"
                " with a letter or digit, and not starting with msg_ or bad_",
                "string_pattern_mismatch",
            )
        )
        return None
    return value


def _items(value: Any, problems: list[dict[str, Any]]) -> list[Item]:
    if value is None:
        problems.append(field_error(("data", "items"), "Field required", "missing"))
        return []
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ITEMS:
        problems.append(
            field_error(
                ("data", "items"),
                f"Input should be a list of 1 to {MAX_ITEMS} items",
                "list_type",
            )
        )
        return []
    items: list[Item] = []
    seen: dict[str, int] = {}
    for idx, item in enumerate(value):
        loc: tuple[str | int, ...] = ("data", "items", idx)
        if not isinstance(item, dict):
            problems.append(field_error(loc, "Input should be an object", "dict_type"))
            continue
        found = _item_problems(item, loc)
        custom_id = item.get("custom_id")
        if isinstance(custom_id, str) and custom_id:
            if custom_id in seen:
                found.append(
                    field_error(
                        (*loc, "custom_id"),
                        f"custom_id repeats the one of item {seen[custom_id]}",
                        "unique",
                    )
                )
            seen.setdefault(custom_id, idx)
        problems.extend(found)
        if not found:
            items.append(Item(idx, str(custom_id), item))
    return items


def _item_problems(item: dict[str, Any], loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for name, kinds in ITEM_FIELDS.items():
        value = item.get(name)
        if value is None:
            continue
        # bool is an int in Python; an int field given true is still wrong.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            problems.append(field_error((*loc, name), f"Input should be {expected}", "type"))
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= _MAX_CUSTOM_ID:
        problems.append(
            field_error(
                (*loc, "custom_id"),
                f"Field required: a string of 1 to {_MAX_CUSTOM_ID} characters",
                "missing",
            )
        )
    if (item.get("model") is None) == (item.get("agent_id") is None):
        problems.append(field_error(loc, "exactly one of model and agent_id is required", "value"))
    inputs = item.get("inputs")
    if inputs is None:
        problems.append(field_error((*loc, "inputs"), "Field required", "missing"))
    elif isinstance(inputs, list):
        for i, entry in enumerate(inputs):
            if not isinstance(entry, dict):
                problems.append(
                    field_error((*loc, "inputs", i), "Input should be an entry object", "dict_type")
                )
    if item.get("stream") is True:
        problems.append(field_error((*loc, "stream"), "batch items do not stream", "value"))
    if item.get("store") is False:
        problems.append(field_error((*loc, "store"), "batch items are always stored", "value"))
    if item.get("handoff_execution") not in (None, "client", "server"):
        problems.append(
            field_error((*loc, "handoff_execution"), "Input should be 'client' or 'server'", "enum")
        )
    metadata = item.get("metadata")
    if isinstance(metadata, dict) and MARKER_KEY in metadata:
        problems.append(
            field_error((*loc, "metadata", MARKER_KEY), "this key is the gateway's", "reserved")
        )
    return problems


def _describe(problem: dict[str, Any]) -> str:
    return ".".join(str(p) for p in problem["loc"]) + ": " + str(problem["msg"])

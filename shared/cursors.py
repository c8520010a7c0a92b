"""Opaque keyset cursors for the gateway's listings.

A cursor is the position of the last row a page returned (for example its
`created_at` and `id`), so the next page starts strictly after it: rows
inserted meanwhile never shift the walk, and no query scans past an OFFSET.

    token = encode("conversations", created_at, conversation_id)
    created_at, conversation_id = decode(token, "conversations", (datetime, str))

The token is base64url (no padding) of a small JSON document that names the
listing it belongs to. It is not signed: it only says where to resume inside
the caller's own tenant, and every query is scoped to that tenant anyway.
It is validated strictly, because its values reach SQL as parameters: any
token this module did not produce (truncated, edited, from another listing,
holding values PostgreSQL would refuse) is a 422 on `query.cursor`, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from shared.errors import ValidationFailed, field_error

__all__ = ["CursorValue", "decode", "encode"]

CursorValue = datetime | str | int

_VERSION = 1
# Far above any real cursor (a timestamp and an id), far below anything costly to parse.
_MAX_TOKEN = 1024
_MAX_TEXT = 512
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
# PostgreSQL `integer`, the type of the sequence columns cursors point into.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_INVALID = "Invalid cursor: pass the next_cursor of the previous page unchanged"


def encode(kind: str, *position: CursorValue) -> str:
    """The opaque token for a position in the listing `kind`."""
    payload = {"v": _VERSION, "k": kind, "p": [_dump(value) for value in position]}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(
    token: str, kind: str, shape: tuple[type[CursorValue], ...], *, param: str = "cursor"
) -> tuple[CursorValue, ...]:
    """The position in `token`, one value per type of `shape`; 422 if it is not a valid one."""
    try:
        return _decode(token, kind, shape)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        problem = field_error(("query", param), _INVALID, "cursor_invalid")
        raise ValidationFailed([problem]) from exc


def _decode(token: str, kind: str, shape: tuple[type[CursorValue], ...]) -> tuple[CursorValue, ...]:
    if not 0 < len(token) <= _MAX_TOKEN or not _TOKEN.fullmatch(token):
        raise ValueError("not a base64url token")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    payload = json.loads(raw)
    if not isinstance(payload, dict) or set(payload) != {"v", "k", "p"}:
        raise ValueError("not a cursor document")
    if payload["v"] != _VERSION or payload["k"] != kind:
        raise ValueError("a cursor of another version or listing")
    values = payload["p"]
    if not isinstance(values, list) or len(values) != len(shape):
        raise ValueError("a position of the wrong length")
    return tuple(_load(value, wanted) for value, wanted in zip(values, shape, strict=True))


def _dump(value: CursorValue) -> str | int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("cursor datetimes must be timezone-aware")
        # Microseconds always: PostgreSQL's resolution, so the position is exact.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _load(value: Any, wanted: type[CursorValue]) -> CursorValue:
    if wanted is int:
        # bool is an int in Python, never in a cursor.
        if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
            raise ValueError("not an integer position")
        return value
    if not isinstance(value, str) or not _storable(value):
        raise ValueError("not a text position")
    if wanted is str:
        return value
    if wanted is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("a naive datetime")
        return parsed.astimezone(UTC)
    raise TypeError(f"unsupported cursor type {wanted!r}")


def _storable(text: str) -> bool:
    """True for text PostgreSQL accepts as a parameter: bounded, no NUL, valid UTF-8."""
    if len(text) > _MAX_TEXT or "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True

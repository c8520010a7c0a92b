"""Query strings of the read routes, parsed into typed queries (422 with every bad field).

Every value that reaches SQL is checked here first for what PostgreSQL would
refuse (NUL characters, unpaired surrogates, out-of-range numbers, non-finite
JSON numbers), so a bad query string is the caller's 422, never our 500.
Empty parameters (`?status=`) count as absent, as form-style clients send them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from shared import cursors
from shared.errors import ValidationFailed, field_error
from shared.query import query_integer

__all__ = [
    "BATCH_ITEM_STATUSES",
    "CONVERSATION_STATUSES",
    "MAX_PAGE_SIZE",
    "MISTRAL_PAGE_SIZE_CLAMP",
    "BatchItemsQuery",
    "BatchesQuery",
    "ConversationsQuery",
    "EntriesQuery",
    "MistralListQuery",
    "QueryArgs",
]

# The SDK's default page size is 100; a page of the gateway's own lists is bounded.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Mistral's lists accept any page size, and the SDK's `list_pages().next()` stops when a page
# holds fewer than it asked for, so a smaller page would end the walk early: the page size
# asked is served (a size past PostgreSQL's integer range is all there is).
MISTRAL_PAGE_SIZE_CLAMP = 2**31 - 1
# Page numbers beyond this are no real walk through a tenant's conversations.
_MAX_PAGE = 1_000_000
_MAX_TEXT = 256
_MAX_METADATA = 4096
_MAX_METADATA_DEPTH = 16
_METADATA_LIMITS = (
    f"Input should be a JSON object of at most {_MAX_METADATA} characters, "
    f"{_MAX_METADATA_DEPTH} levels deep, with finite numbers and no NUL characters"
)

# Statuses a caller may filter on: 'deleted' conversations are absent everywhere.
CONVERSATION_STATUSES = ("active", "archived")
BATCH_ITEM_STATUSES = ("pending", "running", "succeeded", "failed")

# Cursor kinds: a cursor of one listing is refused by another.
CONVERSATIONS_CURSOR = "conversations"
ENTRIES_CURSOR = "entries"
BATCHES_CURSOR = "batches"
BATCH_ITEMS_CURSOR = "batch_items"


class _Args:
    """Reads query parameters, collecting every problem before raising one 422."""

    def __init__(self, args: Mapping[str, str]) -> None:
        self._args = args
        self._errors: list[dict[str, Any]] = []

    def _raw(self, name: str) -> str | None:
        value = self._args.get(name)
        return value if value else None

    def _fail(self, name: str, message: str, kind: str) -> None:
        self._errors.append(field_error(("query", name), message, kind))

    def check(self) -> None:
        if self._errors:
            raise ValidationFailed(self._errors)

    def integer(
        self, name: str, default: int, minimum: int, maximum: int, *, clamp: bool = False
    ) -> int:
        """A query integer in [minimum, maximum]; with `clamp`, a larger one is `maximum`."""
        try:
            return query_integer(
                self._raw(name),
                name,
                default=default,
                minimum=minimum,
                maximum=maximum,
                clamp=clamp,
            )
        except ValidationFailed as exc:
            self._errors.extend(exc.detail)
            return default

    def text(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if len(raw) > _MAX_TEXT or not raw.isprintable():
            self._fail(
                name, f"Input should be printable text of at most {_MAX_TEXT} characters", "string"
            )
            return None
        return raw

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None or raw in options:
            return raw
        allowed = " or ".join(repr(o) for o in options)
        self._fail(name, f"Input should be {allowed}", "enum")
        return None

    def moment(self, name: str) -> datetime | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is None:
                raise ValueError("no timezone")
            return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            self._fail(
                name,
                "Input should be an RFC 3339 date-time with a timezone, e.g. 2025-06-01T12:00:00Z",
                "datetime_parsing",
            )
            return None

    def metadata(self, name: str, *, lenient: bool) -> str | None:
        """A JSON object as canonical JSON text for a `@>` filter; None for no filter.

        Lenient (the Mistral route): anything that is not a JSON object means no filter,
        because the SDK sends a sentinel string when the caller gives none.
        """
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            if not lenient:
                self._fail(name, "Input should be a JSON object", "json_invalid")
            return None
        if not isinstance(value, dict):
            if not lenient:
                self._fail(name, "Input should be a JSON object", "dict_type")
            return None
        if not value:
            return None  # every conversation's metadata contains {}
        text = _storable_json(value)
        if text is None or len(raw) > _MAX_METADATA:
            self._fail(name, _METADATA_LIMITS, "value_error")
            return None
        return text

    def cursor(
        self, name: str, kind: str, shape: tuple[type[cursors.CursorValue], ...]
    ) -> tuple[cursors.CursorValue, ...] | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            return cursors.decode(raw, kind, shape, param=name)
        except ValidationFailed as exc:
            self._errors.extend(exc.detail)
            return None


# The gateway's own lists outside this package (keys, tenants, audit) parse with it too.
QueryArgs = _Args


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _storable_json(value: dict[str, Any]) -> str | None:
    """`value` as JSON text that PostgreSQL's jsonb accepts, or None if it would refuse it."""
    if _depth(value) > _MAX_METADATA_DEPTH:
        return None
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode()
    except (ValueError, UnicodeEncodeError):
        return None
    # json.dumps writes NUL as the escape \u0000, which jsonb refuses to store or compare.
    return None if "\\u0000" in text else text


@dataclass(frozen=True)
class MistralListQuery:
    """`GET /v1/conversations`: the SDK's page-number paging and metadata filter."""

    page: int = 0
    page_size: int = DEFAULT_PAGE_SIZE
    metadata: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> MistralListQuery:
        read = _Args(args)
        query = cls(
            page=read.integer("page", 0, 0, _MAX_PAGE),
            page_size=read.integer(
                "page_size", DEFAULT_PAGE_SIZE, 1, MISTRAL_PAGE_SIZE_CLAMP, clamp=True
            ),
            metadata=read.metadata("metadata", lenient=True),
        )
        read.check()
        return query


@dataclass(frozen=True)
class ConversationsQuery:
    """`GET /gateway/v1/conversations`: filters, a page size, and where the last page ended."""

    agent_id: str | None = None
    model: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: str | None = None
    limit: int = DEFAULT_PAGE_SIZE
    after: tuple[datetime, str] | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ConversationsQuery:
        read = _Args(args)
        position = read.cursor("cursor", CONVERSATIONS_CURSOR, (datetime, str))
        query = cls(
            agent_id=read.text("agent_id"),
            model=read.text("model"),
            status=read.choice("status", CONVERSATION_STATUSES),
            created_after=read.moment("created_after"),
            created_before=read.moment("created_before"),
            metadata=read.metadata("metadata", lenient=False),
            limit=read.integer("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            after=cast("tuple[datetime, str] | None", position),
        )
        read.check()
        return query


@dataclass(frozen=True)
class EntriesQuery:
    """`GET /gateway/v1/conversations/{id}/entries`: entries in history order."""

    limit: int = DEFAULT_PAGE_SIZE
    after: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> EntriesQuery:
        read = _Args(args)
        position = read.cursor("cursor", ENTRIES_CURSOR, (int,))
        query = cls(
            limit=read.integer("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            after=cast(int, position[0]) if position else None,
        )
        read.check()
        return query


@dataclass(frozen=True)
class BatchesQuery:
    """`GET /gateway/v1/batches`: the tenant's batches, newest first."""

    limit: int = DEFAULT_PAGE_SIZE
    after: tuple[datetime, str] | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> BatchesQuery:
        read = _Args(args)
        position = read.cursor("cursor", BATCHES_CURSOR, (datetime, str))
        query = cls(
            limit=read.integer("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            after=cast("tuple[datetime, str] | None", position),
        )
        read.check()
        return query


@dataclass(frozen=True)
class BatchItemsQuery:
    """`GET /gateway/v1/batches/{id}/items`: an optional status, in index order."""

    status: str | None = None
    limit: int = DEFAULT_PAGE_SIZE
    after: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> BatchItemsQuery:
        read = _Args(args)
        position = read.cursor("cursor", BATCH_ITEMS_CURSOR, (int,))
        query = cls(
            status=read.choice("status", BATCH_ITEM_STATUSES),
            limit=read.integer("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            after=cast(int, position[0]) if position else None,
        )
        read.check()
        return query

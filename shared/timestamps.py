"""Datetimes on the wire: RFC 3339 in UTC with `Z`, as the SDK parses them (contract 6.7)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now_rfc3339", "parse_rfc3339", "rfc3339"]


def rfc3339(value: datetime | None) -> str | None:
    """UTC with `Z`, microseconds kept (PostgreSQL's resolution)."""
    if value is None:
        return None
    # isoformat, not strftime: `%Y` drops the leading zeros of years before 1000.
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC)) or ""


def parse_rfc3339(value: object) -> datetime | None:
    """A timestamp Mistral sent (naive ones are taken as UTC); None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""The pool's timestamptz reader gives what pg8000's own reader gives, for every form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pg8000.converters import timestamptz_in as pg8000_timestamptz_in

from shared.db._connect import timestamptz_in

# PostgreSQL's ISO output of timestamptz, as pg8000 receives it (DateStyle ISO).
SAMPLES = [
    "2026-12-06 18:14:51.409+00",
    "2026-12-06 18:14:51.409123+00",
    "2026-12-06 18:14:51.4+00",
    "2026-12-06 18:14:51+00",
    "2026-12-06 18:14:51.5+05:30",
    "2026-12-06 18:14:51-03",
    "0099-01-01 00:00:00+00",
    "infinity",
    "-infinity",
    "10000-01-01 00:00:00+00",
    "0044-03-15 12:00:00+00 BC",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_same_value_as_pg8000(text: str) -> None:
    """Each form reads to the same value, and type, as pg8000's strptime reader."""
    ours, theirs = timestamptz_in(text), pg8000_timestamptz_in(text)
    assert ours == theirs
    assert type(ours) is type(theirs)
    if isinstance(ours, datetime):
        assert ours.utcoffset() == theirs.utcoffset()


def test_reads_aware_utc() -> None:
    """A UTC timestamp comes out aware, in UTC, microseconds kept."""
    assert timestamptz_in("2026-12-06 18:14:51.000042+00") == datetime(
        2026, 12, 6, 18, 14, 51, 42, tzinfo=UTC
    )

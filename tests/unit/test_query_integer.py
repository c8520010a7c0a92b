"""The one parser of query-string integers (`shared.query.query_integer`)."""

from __future__ import annotations

import pytest

from shared.errors import ValidationFailed
from shared.query import query_integer


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 5), ("", 5), ("0", 0), ("+7", 7), ("42", 42), ("0042", 42)]
)
def test_plain_integers_and_absence_are_read(raw: str | None, expected: int) -> None:
    """Absent or empty is the default; an optional sign and ASCII digits are the number."""
    assert query_integer(raw, "page", default=5, minimum=0, maximum=100) == expected


@pytest.mark.parametrize("raw", [" 7", "7 ", "7_0", "٧", "1e3", "0x10", "7.0", "-", "seven"])
def test_what_int_alone_would_take_is_refused(raw: str) -> None:
    """Whitespace, underscores, non-ASCII digits and other spellings are 422 `int_parsing`."""
    with pytest.raises(ValidationFailed) as caught:
        query_integer(raw, "page", default=0, minimum=0)
    assert [(d["loc"], d["type"]) for d in caught.value.detail] == [
        (["query", "page"], "int_parsing")
    ]


def test_bounds_refuse_or_clamp() -> None:
    """Below the minimum is refused; above the maximum is refused, or capped with `clamp`,
    however many digits it has."""
    with pytest.raises(ValidationFailed) as low:
        query_integer("-1", "page", default=0, minimum=0)
    assert low.value.detail[0]["type"] == "greater_than_equal"
    with pytest.raises(ValidationFailed) as high:
        query_integer("101", "page_size", default=20, minimum=1, maximum=100)
    assert high.value.detail[0]["type"] == "less_than_equal"
    huge = "9" * 5000
    assert query_integer(huge, "page_size", default=20, minimum=1, maximum=100, clamp=True) == 100
    with pytest.raises(ValidationFailed):
        query_integer("-" + huge, "page", default=0, minimum=0)

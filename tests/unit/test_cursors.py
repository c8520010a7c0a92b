"""Keyset cursors: opaque, exact round trips, and strict about anything they did not produce."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import cursors
from shared.errors import ValidationFailed

SHAPE = (datetime, str)
WHEN = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _token(payload: object) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rejected(token: str, kind: str = "conversations", shape: tuple[type, ...] = SHAPE) -> bool:
    with pytest.raises(ValidationFailed) as raised:
        cursors.decode(token, kind, shape)
    (problem,) = raised.value.detail
    return problem["loc"] == ["query", "cursor"] and problem["type"] == "cursor_invalid"


def test_round_trip_keeps_microseconds_and_id() -> None:
    """A decoded cursor gives back the exact timestamp, to the microsecond, and the id."""
    token = cursors.encode("conversations", WHEN, "conv_1")
    assert cursors.decode(token, "conversations", SHAPE) == (WHEN, "conv_1")


def test_round_trip_normalises_offsets_to_utc() -> None:
    """A timestamp with an offset comes back as the same instant in UTC."""
    paris = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    (decoded,) = cursors.decode(cursors.encode("k", paris), "k", (datetime,))
    assert decoded == paris
    assert decoded.utcoffset() == timedelta(0)


def test_token_is_url_safe_and_unpadded() -> None:
    """Tokens need no escaping in a query string."""
    token = cursors.encode("entries", 2**31 - 1)
    assert token.replace("-", "").replace("_", "").isalnum()
    assert "=" not in token


def test_naive_datetimes_cannot_be_encoded() -> None:
    """Encoding refuses a timestamp without a timezone rather than guessing one."""
    with pytest.raises(ValueError, match="timezone"):
        cursors.encode("conversations", datetime(2025, 6, 1), "conv_1")


def test_a_cursor_of_another_listing_is_rejected() -> None:
    """A conversations cursor does not work on batches, even with the same shape."""
    assert _rejected(cursors.encode("conversations", WHEN, "x"), kind="batches")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!!",
        "a" * 2000,
        "AAAA",  # three NUL bytes
        "e30",  # {}
        _token([1, 2]),
        _token({"v": 1, "k": "conversations"}),
        _token({"v": 2, "k": "conversations", "p": [WHEN.isoformat(), "x"]}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat(), "x"], "extra": 1}),
        _token({"v": 1, "k": "conversations", "p": "not a list"}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat()]}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat(), "x", "y"]}),
        _token({"v": 1, "k": "conversations", "p": ["2025-06-01T12:00:00", "x"]}),
        _token({"v": 1, "k": "conversations", "p": ["June 1st", "x"]}),
        _token({"v": 1, "k": "conversations", "p": ["0001-01-01T00:00:00+01:00", "x"]}),
        _token({"v": 1, "k": "conversations", "p": [1717243200, "x"]}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat(), None]}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat(), "a\u0000b"]}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat(), "\ud800"]}),
        _token({"v": 1, "k": "conversations", "p": [WHEN.isoformat(), "x" * 513]}),
    ],
)
def test_malformed_conversation_cursors_are_a_422(token: str) -> None:
    """Garbage, wrong documents, wrong lengths and values PostgreSQL would refuse are 422."""
    assert _rejected(token)


@pytest.mark.parametrize("value", [True, 1.5, "7", 2**31, -(2**31) - 1, None])
def test_integer_positions_must_be_plain_int32(value: object) -> None:
    """Integer cursors hold a PostgreSQL integer: no bools, floats, strings or overflow."""
    assert _rejected(_token({"v": 1, "k": "entries", "p": [value]}), "entries", (int,))


def test_the_error_names_the_parameter_it_came_from() -> None:
    """The 422 points at the query parameter the caller used."""
    with pytest.raises(ValidationFailed) as raised:
        cursors.decode("nope!", "entries", (int,), param="after")
    assert raised.value.detail[0]["loc"] == ["query", "after"]


@given(
    when=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
    ident=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=100
    ),
    seq=st.integers(-(2**31), 2**31 - 1),
)
def test_any_encodable_position_round_trips(when: datetime, ident: str, seq: int) -> None:
    """Every position the listings can produce decodes to itself."""
    token = cursors.encode("k", when, ident, seq)
    assert cursors.decode(token, "k", (datetime, str, int)) == (when, ident, seq)


@given(st.text(max_size=300))
def test_decoding_arbitrary_text_never_fails_otherwise(token: str) -> None:
    """Whatever a caller sends as a cursor, the answer is a position or a 422, never a crash."""
    try:
        position = cursors.decode(token, "conversations", SHAPE)
    except ValidationFailed:
        return
    assert isinstance(position[0], datetime)
    assert isinstance(position[1], str)


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_fails_otherwise(raw: bytes) -> None:
    """Any base64url payload, valid JSON or not, is a position or a 422."""
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    try:
        (position,) = cursors.decode(token, "entries", (int,))
    except ValidationFailed:
        return
    assert type(position) is int

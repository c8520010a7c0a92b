"""A batch job's input file is read for its price only up to the cap: the whole lines
within it, whatever chunks the download arrives in, and never more of the stream
(shared.resources.pricing._capped_lines)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from shared.resources.pricing import _capped_lines, _Tally

_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))


@given(
    lines=st.lists(_LINE, max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    limit=st.integers(0, 400),
)
def test_the_lines_given_are_the_whole_lines_within_the_cap(
    lines: list[bytes], cuts: list[int], limit: int
) -> None:
    """Whatever the chunks: the lines that end within `limit` bytes, in order; their bytes
    counted; `capped` exactly when the data went on past the limit."""
    data = b"".join(line + b"\n" for line in lines)
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    tally = _Tally()
    got = list(_capped_lines(iter(chunks), limit, tally))
    expected, used = [], 0
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        expected.append(line)
        used += len(line) + 1
    assert got == expected
    assert tally.read_bytes == used
    assert tally.capped == (len(data) > limit)


def test_an_endless_stream_is_read_only_to_the_cap() -> None:
    """A download that never ends: reading stops after the chunk that crosses the cap."""
    taken = 0

    def endless() -> Iterator[bytes]:
        nonlocal taken
        for _ in itertools.count():
            taken += 1
            yield b'{"custom_id": "x"}\n' * 10

    tally = _Tally()
    lines = list(_capped_lines(endless(), 1000, tally))
    assert tally.capped
    assert len(lines) == 1000 // 19
    assert taken == -(-1000 // 190)

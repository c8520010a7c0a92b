"""A batch job's output file is read a line at a time, whatever chunks the download
arrives in (shared.resources.operations._lines)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.resources.operations import _lines

_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))


@given(lines=st.lists(_LINE, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_lines_are_the_same_whatever_the_chunks(lines: list[bytes], cuts: list[int]) -> None:
    """Lines split across chunks at any points come out whole, in order, and once each."""
    data = b"".join(line + b"\n" for line in lines)
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    assert list(_lines(iter(chunks))) == lines


def test_a_last_line_without_its_newline_still_counts() -> None:
    """The file's last line is read even when the file does not end with a newline."""
    assert list(_lines(iter([b'{"a"', b": 1}\n{", b'"b": 2}']))) == [b'{"a": 1}', b'{"b": 2}']

"""The hash an upload under an Idempotency-Key is compared by: its parts, not its boundary."""

from __future__ import annotations

import pytest

from shared.limits.idempotency import PartsHash

BODY = (
    b'--{b}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
    b'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 1000 + b"\r\n--{b}--\r\n"
)


def _hash(boundary: str, step: int, body: bytes = BODY) -> str:
    raw = body.replace(b"{b}", boundary.encode())
    hashed = PartsHash(f"multipart/form-data; boundary={boundary}")
    chunks = [raw[i : i + step] for i in range(0, len(raw), step)]
    assert b"".join(hashed.through(chunks)) == raw
    return hashed.hexdigest()


@pytest.mark.parametrize("step", [1, 7, 33, 34, 35, 64, 10_000])
def test_the_same_parts_hash_the_same_whatever_the_boundary_and_chunks(step: int) -> None:
    """Two boundaries (of other lengths too), any chunk size: one hash."""
    assert _hash("a" * 32, step) == _hash("0123456789abcdef" * 2, 10_000)
    assert _hash("short", step) == _hash("a" * 32, 10_000)


def test_other_parts_hash_otherwise() -> None:
    """One byte of the file changed: another hash."""
    other = BODY.replace(b"x" * 1000, b"x" * 999 + b"y")
    assert _hash("a" * 32, 10) != _hash("a" * 32, 10, other)


def test_a_quoted_boundary_is_read() -> None:
    """`boundary="..."` is the same boundary as unquoted."""
    raw = BODY.replace(b"{b}", b"q-1")
    quoted, plain = (
        PartsHash('multipart/form-data; boundary="q-1"'),
        PartsHash("multipart/form-data; boundary=q-1"),
    )
    list(quoted.through([raw]))
    list(plain.through([raw]))
    assert quoted.hexdigest() == plain.hexdigest() == _hash("zz", 5)

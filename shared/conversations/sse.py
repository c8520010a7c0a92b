"""Server-sent events as the Mistral SDK reads them (wire contract section 7).

`SseParser` takes bytes as they arrive and yields complete events, for the
gateway to watch a stream it relays without holding it back. `format_event`
writes one frame in the framing the SDK accepts (an `event:` line is required;
there is no `[DONE]` sentinel).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SseEvent", "SseParser", "format_event"]


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """Incremental: feed chunks, get events; any line ending, comments skipped.

    Bytes are kept until their frame is complete and only then decoded, so a character
    (or a CRLF) split across two chunks arrives whole.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for a frame's end
        self._held_cr = False  # the last chunk ended in CR: the next may start with its LF
        self._first = True

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._held_cr = True
        self._buffer += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while (end := self._buffer.find(b"\n\n", max(self._scanned - 1, 0))) >= 0:
            frame = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            self._scanned = 0
            event = self._event(frame)
            if event is not None:
                yield event
        self._scanned = len(self._buffer)

    def close(self) -> Iterator[SseEvent]:
        """A final frame without its blank line still counts (as the SDK does)."""
        frame = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        self._held_cr = False
        event = self._event(frame)
        if event is not None:
            yield event

    def _event(self, frame: bytes) -> SseEvent | None:
        text = frame.decode("utf-8", errors="replace")
        if self._first:
            self._first = False
            text = text.removeprefix("\ufeff")
        return _parse_frame(text)


def _parse_frame(frame: str) -> SseEvent | None:
    name = ""
    data: list[str] = []
    for line in frame.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if not data:
        return None
    return SseEvent(name, "\n".join(data))


def format_event(data: dict[str, Any]) -> bytes:
    """One SSE frame whose event name is the payload's `type`."""
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {data['type']}\ndata: {payload}\n\n".encode()

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
    """Incremental: feed chunks, get events; any line ending, comments skipped."""

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        text = chunk.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        while "\n\n" in self._buffer:
            frame, self._buffer = self._buffer.split("\n\n", 1)
            event = _parse_frame(frame)
            if event is not None:
                yield event

    def close(self) -> Iterator[SseEvent]:
        """A final frame without its blank line still counts (as the SDK does)."""
        frame, self._buffer = self._buffer, ""
        event = _parse_frame(frame)
        if event is not None:
            yield event


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

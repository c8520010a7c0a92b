"""The SSE parser reads the same events however the bytes are cut into chunks."""

from __future__ import annotations

from collections.abc import Iterable

from shared.conversations.sse import SseEvent, SseParser, format_event

# Two-, three- and four-byte UTF-8 characters, CRLF and bare CR line endings, a comment,
# a BOM, and a last frame without its blank line.
TEXT = "café ☕ 𝄞 naïve"
STREAM = (
    '\ufeffevent: conversation.response.started\r\ndata: {"a": 1}\r\n\r\n'
    ": a comment\n\n"
    f"event: message.output.delta\rdata: {TEXT}\r\rdata: line two é\n\n"
    f"event: conversation.response.done\ndata: {TEXT}"
).encode()
EXPECTED = [
    SseEvent("conversation.response.started", '{"a": 1}'),
    SseEvent("message.output.delta", TEXT),
    SseEvent("", "line two é"),
    SseEvent("conversation.response.done", TEXT),
]


def parse(chunks: Iterable[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + list(parser.close())


def test_the_whole_stream_in_one_chunk() -> None:
    """One chunk gives every event, multi-byte characters intact, BOM and comment dropped."""
    assert parse([STREAM]) == EXPECTED


def test_every_split_point_gives_the_same_events() -> None:
    """Cut in two at every byte (inside a character, between CR and LF): the same events."""
    for cut in range(len(STREAM) + 1):
        assert parse([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    """Fed byte by byte, no character is replaced and no blank line invented."""
    assert parse(STREAM[i : i + 1] for i in range(len(STREAM))) == EXPECTED


def test_a_formatted_event_reads_back_as_itself() -> None:
    """format_event's frame, cut anywhere, parses back to its payload."""
    frame = format_event({"type": "message.output.delta", "content": TEXT})
    for cut in range(len(frame) + 1):
        (event,) = parse([frame[:cut], frame[cut:]])
        assert event.json() == {"type": "message.output.delta", "content": TEXT}


def test_bytes_that_are_not_utf8_are_replaced_not_raised() -> None:
    """An invalid byte in a frame becomes U+FFFD; the frames around it are unharmed."""
    events = parse([b"data: ok\n\ndata: bad \xff here\n\ndata: \xc3", b"\xa9\n\n"])
    assert [e.data for e in events] == ["ok", "bad \ufffd here", "é"]

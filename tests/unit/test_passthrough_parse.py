"""Metered pass-through: what the gateway reads of a call, and what it reserves for it."""

from __future__ import annotations

import json

import pytest

from shared.config import Settings
from shared.conversations.store import Usage
from shared.errors import UnsupportedMediaType, ValidationFailed
from shared.limits.estimate import call_reservation, text_tokens
from shared.passthrough import build_passthrough
from shared.passthrough.relay import _UsageWatcher, usage_of
from shared.passthrough.request import form_fields

_FORM = "multipart/form-data; boundary=XyZ"
_BODY = (
    b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nvoxtral-mini\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="stream"\r\n\r\ntrue\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n'
    b"Content-Type: audio/mpeg\r\n\r\n\x00\x01model\r\n"
    b"--XyZ--\r\n"
)


def test_form_fields_reads_text_fields_and_skips_files() -> None:
    """A multipart body's short text fields are read; the file part is not."""
    assert form_fields(_BODY, _FORM) == {"model": "voxtral-mini", "stream": "true"}


def test_a_multipart_call_keeps_its_bytes_and_content_type() -> None:
    """A transcription is relayed as sent, boundary included, and streams on its field."""
    call = build_passthrough("audio.transcriptions.complete", "/p", _BODY, _FORM, None)
    assert (call.raw, call.content_type, call.model, call.stream) == (
        _BODY,
        _FORM,
        "voxtral-mini",
        True,
    )


def test_a_transcription_that_is_not_multipart_is_415() -> None:
    """A JSON body where Mistral takes a form is refused before Mistral."""
    with pytest.raises(UnsupportedMediaType):
        build_passthrough("audio.transcriptions.complete", "/p", b"{}", "application/json", None)


@pytest.mark.parametrize(
    ("operation", "body", "field"),
    [
        ("chat.complete", {"messages": []}, "model"),
        ("agents.complete", {"messages": []}, "agent_id"),
        ("embeddings.create", {"model": 7, "input": "x"}, "model"),
        ("chat.complete", {"model": "m", "stream": "yes"}, "stream"),
    ],
)
def test_what_the_gateway_reads_is_validated(
    operation: str, body: dict[str, object], field: str
) -> None:
    """A missing or mistyped model, agent_id or stream is 422 naming the field."""
    with pytest.raises(ValidationFailed) as raised:
        build_passthrough(operation, "/p", b"{}", "application/json", body)
    assert [p["loc"] for p in raised.value.detail] == [["body", field]]


def test_agent_id_counts_only_for_agents_completions() -> None:
    """An `agent_id` in a chat body is Mistral's to judge, not an agent to own."""
    body = {"model": "m", "agent_id": "ag_1", "messages": []}
    assert build_passthrough("chat.complete", "/p", b"", "", body).agent_id is None
    agents = build_passthrough("agents.complete", "/p", b"", "", {"agent_id": "ag_1"})
    assert agents.agent_id == "ag_1"


def test_reservations_count_inputs_and_max_tokens() -> None:
    """Chat reserves its messages plus max_tokens; embeddings their inputs only."""
    settings = Settings()
    words = "one two three four"
    chat = {"model": "m", "messages": [{"role": "user", "content": words}], "max_tokens": 50}
    reserved = call_reservation(settings, "chat.complete", chat)
    assert reserved == text_tokens(words) + text_tokens("user") + 4 + 50
    embed = {"model": "m", "input": [words, words]}
    assert call_reservation(settings, "embeddings.create", embed) == 2 * text_tokens(words)
    no_max = {"model": "m", "messages": []}
    assert call_reservation(settings, "chat.complete", no_max) == settings.token_reserve_completion


def test_the_watcher_reads_usage_from_the_last_chunk_and_done() -> None:
    """A chat stream's usage is its last chunk's; [DONE] ends it, split across reads."""
    watcher = _UsageWatcher()
    watcher.feed(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')
    watcher.feed(b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}\n\nda')
    assert not watcher.done
    watcher.feed(b"ta: [DONE]\n\n")
    assert watcher.done
    assert (watcher.usage.prompt_tokens, watcher.usage.completion_tokens) == (3, 5)


def test_the_watcher_ends_on_a_done_event() -> None:
    """Speech and transcription streams end with a `*.done` event carrying the usage."""
    watcher = _UsageWatcher()
    watcher.feed(b'event: speech.audio.done\ndata: {"type":"speech.audio.done",')
    watcher.feed(b'"usage":{"prompt_tokens":2,"completion_tokens":9}}\n\n')
    assert watcher.done
    assert watcher.usage.total == 11


def test_only_operations_mistral_streams_are_streamed() -> None:
    """`"stream": true` on an embeddings call is relayed, not read as a stream."""
    body = {"model": "m", "input": "x", "stream": True}
    assert not build_passthrough("embeddings.create", "/p", b"", "", body).stream
    assert build_passthrough("chat.complete", "/p", b"", "", {**body, "messages": []}).stream


def test_the_files_a_call_names_are_found() -> None:
    """OCR's file document, a chat message's file chunk and a transcription's file_id."""
    ocr = {"model": "m", "document": {"type": "file", "file_id": "file-1"}}
    assert build_passthrough("ocr.process", "/p", b"", "", ocr).file_ids == ("file-1",)
    content = [{"type": "text", "text": "see"}, {"type": "file", "file_id": "file-2"}]
    chat = {"model": "m", "messages": [{"role": "user", "content": content}]}
    assert build_passthrough("chat.complete", "/p", b"", "", chat).file_ids == ("file-2",)
    form = _BODY.replace(b'name="stream"\r\n\r\ntrue', b'name="file_id"\r\n\r\nfile-3')
    transcription = build_passthrough("audio.transcriptions.complete", "/p", form, _FORM, None)
    assert transcription.file_ids == ("file-3",)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # OCR: pages, no tokens (the SDK's OCRResponse.usage_info).
        ({"usage_info": {"pages_processed": 4, "doc_size_bytes": 900}}, Usage(pages=4)),
        # A transcription: tokens and seconds of audio (the SDK's UsageInfo).
        (
            {"usage": {"prompt_tokens": 30, "completion_tokens": 7, "prompt_audio_seconds": 3}},
            Usage(30, 7, audio_seconds=3),
        ),
        # Mistral says null where it has no seconds: none.
        ({"usage": {"prompt_tokens": 5, "prompt_audio_seconds": None}}, Usage(5)),
        # What is no count is none: negative, text, a boolean, a non-object.
        ({"usage": {"prompt_audio_seconds": -2}, "usage_info": {"pages_processed": "9"}}, Usage()),
        ({"usage": {"prompt_audio_seconds": True}, "usage_info": [1]}, Usage()),
        # Past PostgreSQL's integer: capped, not unstorable.
        ({"usage_info": {"pages_processed": 2**40}}, Usage(pages=2**31 - 1)),
        ([1, 2], Usage()),
    ],
)
def test_usage_of_reads_pages_and_audio_seconds(answer: object, expected: Usage) -> None:
    """usage_of reads OCR's pages_processed and usage's prompt_audio_seconds; anything
    that is not a count is 0."""
    assert usage_of(answer) == expected


def test_a_transcription_streams_done_event_carries_its_seconds() -> None:
    """The stream watcher takes the seconds from transcription.done, and sees the end."""
    watcher = _UsageWatcher()
    done = {
        "type": "transcription.done",
        "model": "voxtral-mini",
        "text": "hi",
        "language": "en",
        "usage": {"prompt_tokens": 20, "completion_tokens": 1, "prompt_audio_seconds": 2},
    }
    watcher.feed(b'data: {"type": "transcription.text.delta", "text": "hi"}\n\n')
    watcher.feed(b"data: " + json.dumps(done).encode() + b"\n\n")
    assert watcher.done
    assert watcher.usage == Usage(20, 1, audio_seconds=2)

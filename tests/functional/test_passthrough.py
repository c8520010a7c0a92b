"""Metered pass-through in the start function, against the stand-in over real HTTP: bytes
relayed unchanged, retries, Mistral's refusals and broken streams, the access line, and
what each costs the budget."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.observability import capture_logs, configure_logging
from shared.resources.records import record_created
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, make_key

MODEL = "mistral-small-latest"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "one two three"}]}
# Ids and creation times differ between two calls; everything else must not.
_VARYING = re.compile(rb'"(id|created)":("[^"]*"|\d+)')


@pytest.fixture
def gateway(container: Container, base_settings: Settings, standin: StandIn) -> Iterator[Container]:
    standin.reset()
    settings = dataclasses.replace(
        base_settings,
        mistral_server_url=standin.url,
        breaker_failure_threshold=1000,
        mistral_retry_max_ms=50,
    )
    made = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(made)
    yield made
    set_container(previous)


@pytest.fixture
def key(gateway: Container) -> NewKey:
    # A day budget, so each call reserves tokens and settles them.
    return make_key(gateway, "user", owner="tenant-a", token_budget_per_day=10**9)


def _post(key: NewKey, path: str, body: dict[str, Any]) -> Any:
    return client("start").post(path, json=body, headers=bearer(key))


def _direct(standin: StandIn, path: str, body: dict[str, Any]) -> bytes:
    answer = httpx2.post(
        standin.url + path, json=body, headers={"Authorization": "Bearer x"}, timeout=30
    )
    return answer.content


def _events(gateway: Container) -> list[dict[str, Any]]:
    with gateway.pool.connection() as conn:
        return conn.all(
            "SELECT operation, status, prompt_tokens, completion_tokens FROM usage_events"
            " WHERE owner_id = 'tenant-a' ORDER BY id"
        )


def _day_charge(gateway: Container) -> int:
    return sum(int(gateway.redis.get(k) or 0) for k in gateway.redis.keys("gw:tok:d:tenant-a:*"))


def test_answers_and_streams_are_relayed_byte_for_byte(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A chat stream's and an embeddings answer's bytes equal the stand-in's, ids aside."""
    for path, body in (
        ("/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 20}),
        ("/v1/embeddings", {"model": "mistral-embed", "input": ["a b", "c"]}),
    ):
        via = _post(key, path, body)
        assert via.status_code == 200
        assert _VARYING.sub(b"", via.get_data()) == _VARYING.sub(b"", _direct(standin, path, body))


def test_a_mistral_429_is_retried_and_counted_once(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Mistral's own 429 (it did nothing) is retried; the call is counted once."""
    standin.inject("status=429;retry_after_ms=10", 1, "chat.complete")
    answer = _post(key, "/v1/chat/completions", CHAT)
    assert answer.status_code == 200
    assert standin.calls()["chat.complete"] == 2
    usage = answer.get_json()["usage"]
    assert _events(gateway) == [
        {
            "operation": "chat.complete",
            "status": 200,
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
        }
    ]


def test_a_5xx_is_not_retried(gateway: Container, key: NewKey, standin: StandIn) -> None:
    """A call Mistral may have run (a 503) is not sent again: it could be charged twice."""
    standin.inject("status=503", 1, "chat.complete")
    answer = _post(key, "/v1/chat/completions", CHAT)
    assert answer.status_code == 502
    assert standin.calls()["chat.complete"] == 1


def test_a_refusal_is_relayed_counted_and_costs_nothing(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Mistral's 400 reaches the caller unchanged, is a failed request of 0 tokens, and the
    reservation is given back."""
    standin.inject("status=400", 1, "embeddings.create")
    answer = _post(key, "/v1/embeddings", {"model": "m", "input": "x"})
    assert answer.status_code == 400
    assert answer.get_json()["message"] == "Bad Request (injected by standin)"
    assert _events(gateway) == [
        {
            "operation": "embeddings.create",
            "status": 400,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
    ]
    assert _day_charge(gateway) == 0


def test_a_stream_mistral_breaks_keeps_its_reservation(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A stream cut before its usage: the caller sees it end without [DONE], and the call
    keeps what it reserved, since Mistral did not say what it cost."""
    body = {**CHAT, "stream": True, "max_tokens": 40}
    standin.inject("cut=3", 1, "chat.complete")
    answer = _post(key, "/v1/chat/completions", body)
    assert answer.status_code == 200
    assert b"[DONE]" not in answer.get_data()
    assert _day_charge(gateway) >= 40
    assert [e["operation"] for e in _events(gateway)] == ["chat.complete"]


def test_one_access_line_per_call_with_model_and_tokens(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A streamed call writes one access line, when it ends, with its model and tokens."""
    configure_logging(gateway.settings)
    with capture_logs() as lines:
        answer = _post(key, "/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 6})
        answer.get_data()
    access = [line for line in lines if line.get("event") == "access"]
    assert len(access) == 1
    assert access[0]["route"] == "/v1/chat/completions"
    assert access[0]["model"] == MODEL
    assert (access[0]["tokens_in"], access[0]["tokens_out"]) == (3, 6)


@contextmanager
def _limits(container: Container, base: Settings, url: str, **limits: int) -> Iterator[Container]:
    """The start function with these body limits, against the stand-in at `url`."""
    settings = dataclasses.replace(base, mistral_server_url=url, **limits)
    made = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(made)
    try:
        yield made
    finally:
        set_container(previous)


def _ocr_of(size: int) -> dict[str, Any]:
    """An OCR body whose document is an inline data URL of about `size` bytes."""
    url = "data:application/pdf;base64," + "A" * size
    return {
        "model": "mistral-ocr-latest",
        "document": {"type": "document_url", "document_url": url},
    }


def test_a_media_body_above_its_limit_is_413_before_mistral(
    container: Container, base_settings: Settings, standin: StandIn
) -> None:
    """An inline document or audio above MAX_MEDIA_BODY_BYTES is refused; Mistral is not
    asked."""
    standin.reset()
    with _limits(
        container, base_settings, standin.url, max_body_bytes=4096, max_media_body_bytes=6000
    ):
        key = make_key(container, "user", owner="tenant-a")
        answer = _post(key, "/v1/ocr", _ocr_of(8000))
        form = client("start").post(
            "/v1/audio/transcriptions",
            data={"model": "voxtral", "file": (io.BytesIO(b"x" * 8000), "a.mp3")},
            content_type="multipart/form-data",
            headers=bearer(key),
        )
    assert (answer.status_code, form.status_code) == (413, 413)
    assert json.loads(answer.get_data())["code"] == "payload_too_large"
    calls = standin.calls()
    assert (calls["ocr.process"], calls["audio.transcriptions.complete"]) == (0, 0)


def test_inline_media_past_max_body_bytes_is_relayed_within_the_media_limit(
    container: Container, base_settings: Settings, standin: StandIn
) -> None:
    """Past MAX_BODY_BYTES an OCR document and a transcription's audio go through (calls
    that carry media), an embeddings body of the same size is 413, and the instance's body
    budget is whole again once Mistral has answered."""
    standin.reset()
    with _limits(container, base_settings, standin.url, max_body_bytes=4096) as gateway:
        key = make_key(container, "user", owner="tenant-a")
        ocr = _post(key, "/v1/ocr", _ocr_of(8000))
        form = client("start").post(
            "/v1/audio/transcriptions",
            data={"model": "voxtral-mini-latest", "file": (io.BytesIO(AUDIO), "a.mp3")},
            content_type="multipart/form-data",
            headers=bearer(key),
        )
        embeddings = _post(key, "/v1/embeddings", {"model": "mistral-embed", "input": "A" * 8000})
        held = gateway.body_budget.held
    assert (ocr.status_code, form.status_code) == (200, 200), ocr.get_data(as_text=True)
    assert embeddings.status_code == 413
    assert held == 0
    calls = standin.calls()
    assert (calls["ocr.process"], calls["audio.transcriptions.complete"]) == (1, 1)
    assert calls["embeddings.create"] == 0


def test_a_large_body_the_instances_budget_cannot_take_is_503_at_once(
    container: Container, base_settings: Settings, standin: StandIn
) -> None:
    """With the body budget taken by other requests, a large inline document is 503
    `body_budget_full` with Retry-After and reaches nothing; a small one still goes; once
    the budget is given back the large one goes."""
    standin.reset()
    with _limits(
        container, base_settings, standin.url, max_body_bytes=4096, media_body_budget_bytes=12_000
    ) as gateway:
        key = make_key(container, "user", owner="tenant-a")
        assert gateway.body_budget.take(6000)  # other requests' bodies, held meanwhile
        refused = _post(key, "/v1/ocr", _ocr_of(8000))
        small = _post(key, "/v1/ocr", _ocr_of(1000))
        gateway.body_budget.give(6000)
        later = _post(key, "/v1/ocr", _ocr_of(8000))
    assert refused.status_code == 503
    assert json.loads(refused.get_data())["code"] == "body_budget_full"
    assert refused.headers["Retry-After"] == "1"
    assert (small.status_code, later.status_code) == (200, 200)
    assert standin.calls()["ocr.process"] == 2


def test_a_file_named_in_a_call_must_be_the_callers(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """An OCR call naming another tenant's file, or none at all, is 404 and reaches nothing;
    the tenant's own file goes through."""
    with gateway.pool.transaction() as conn:
        record_created(conn, "tenant-a", "file", {"id": "file-of-a"})
        record_created(conn, "tenant-b", "file", {"id": "file-of-b"})
    calls = standin.calls()
    for file_id in ("file-of-b", "file-missing"):
        body = {"model": "mistral-ocr-latest", "document": {"type": "file", "file_id": file_id}}
        answer = _post(key, "/v1/ocr", body)
        assert answer.status_code == 404, answer.get_data()
        assert file_id in answer.get_json()["message"]
    assert standin.calls() == calls
    own = {"model": "mistral-ocr-latest", "document": {"type": "file", "file_id": "file-of-a"}}
    assert _post(key, "/v1/ocr", own).status_code == 200
    chat = {
        **CHAT,
        "messages": [{"role": "user", "content": [{"type": "file", "file_id": "file-of-b"}]}],
    }
    assert _post(key, "/v1/chat/completions", chat).status_code == 404


def test_the_stand_in_refuses_what_the_sdk_models_cannot_read(standin: StandIn) -> None:
    """A message without `role` (the SDK's discriminator raises a bare ValueError) and a
    form field that is not UTF-8 are Mistral's 422, never a dropped connection (a 502)."""
    moderation = httpx2.post(
        standin.url + "/v1/chat/moderations",
        json={"model": "m", "input": [{"content": "no role"}]},
        headers={"Authorization": "Bearer x"},
        timeout=30,
    )
    assert moderation.status_code == 422, moderation.text
    transcription = httpx2.post(
        standin.url + "/v1/audio/transcriptions",
        files={"file": ("a.mp3", b"abc")},
        data={"model": b"\x80\xff"},
        headers={"Authorization": "Bearer x"},
        timeout=30,
    )
    assert transcription.status_code == 422, transcription.text
    assert transcription.json()["detail"][0]["loc"] == ["body", "model"]


def test_stream_is_read_only_where_mistral_streams(key: NewKey) -> None:
    """A chat call's `stream` must be a boolean (the gateway decides how to relay by it);
    an operation that never streams has no such field, so any value of it is relayed for
    Mistral to ignore, not refused by the gateway."""
    bad = {"model": "mistral-small-latest", "input": "x", "stream": [{}]}
    answer = _post(key, "/v1/classifications", bad)
    assert answer.status_code == 200
    chat = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "x"}]}
    refused = _post(key, "/v1/chat/completions", {**chat, "stream": [{}]})
    assert refused.status_code == 422
    assert refused.get_json()["detail"][0]["loc"] == ["body", "stream"]


# -- units Mistral bills that are not tokens ------------------------------------------------

# The stand-in hears one second per 16,000 bytes of audio and says as many words as the
# length's last digit plus six: 48,009 bytes are 3 seconds and 15 words.
AUDIO = b"\x01" * 48_009


def _units(gateway: Container, owner: str = "tenant-a") -> list[tuple[str, int, int, int]]:
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT operation, prompt_tokens + completion_tokens AS tokens, pages, audio_seconds"
            " FROM usage_events WHERE owner_id = :owner ORDER BY id",
            owner=owner,
        )
    return [(r["operation"], r["tokens"], r["pages"], r["audio_seconds"]) for r in rows]


def _transcribe(key: NewKey, *, stream: bool = False, buffered: bool = True) -> Any:
    form: dict[str, Any] = {"model": "voxtral-mini-latest", "file": (io.BytesIO(AUDIO), "a.mp3")}
    if stream:
        form["stream"] = "true"
    return client("start").post(
        "/v1/audio/transcriptions",
        data=form,
        content_type="multipart/form-data",
        headers=bearer(key),
        buffered=buffered,
    )


def _done_usage(stream: bytes) -> dict[str, Any]:
    """The `usage` of a transcription stream's `transcription.done` event."""
    for line in stream.decode().splitlines():
        if line.startswith("data: ") and '"transcription.done"' in line:
            usage: dict[str, Any] = json.loads(line.removeprefix("data: "))["usage"]
            return usage
    raise AssertionError("no transcription.done event")


def test_ocr_pages_and_audio_seconds_are_recorded_as_mistral_reports_them(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """OCR's usage_info.pages_processed and a transcription's usage.prompt_audio_seconds
    (whole and streamed) land in the call's usage event, beside its tokens."""
    document = {"type": "document_url", "document_url": "https://example.com/a.pdf"}
    ocr = _post(key, "/v1/ocr", {"model": "mistral-ocr-latest", "document": document})
    pages = ocr.get_json()["usage_info"]["pages_processed"]
    whole = _transcribe(key).get_json()["usage"]
    streamed = _done_usage(_transcribe(key, stream=True).get_data())
    assert (whole["prompt_audio_seconds"], streamed["prompt_audio_seconds"]) == (3, 3)
    assert pages >= 1
    assert _units(gateway) == [
        ("ocr.process", 0, pages, 0),
        ("audio.transcriptions.complete", whole["total_tokens"], 0, 3),
        ("audio.transcriptions.complete", streamed["total_tokens"], 0, 3),
    ]


def test_the_access_line_carries_pages_and_audio_seconds_where_billed(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """An OCR call's access line has its pages, a transcription's its audio seconds; a
    chat call's line has neither (no zeros where Mistral bills none)."""
    configure_logging(gateway.settings)
    document = {"type": "document_url", "document_url": "https://example.com/b.pdf"}
    with capture_logs() as lines:
        pages = _post(key, "/v1/ocr", {"model": "mistral-ocr-latest", "document": document})
        _transcribe(key).get_data()
        _post(key, "/v1/chat/completions", CHAT).get_data()
    access = [line for line in lines if line.get("event") == "access"]
    assert [line["route"] for line in access] == [
        "/v1/ocr",
        "/v1/audio/transcriptions",
        "/v1/chat/completions",
    ]
    ocr, transcription, chat = access
    assert ocr["pages"] == pages.get_json()["usage_info"]["pages_processed"]
    assert "audio_seconds" not in ocr
    assert transcription["audio_seconds"] == 3
    assert "pages" not in transcription
    assert "pages" not in chat
    assert "audio_seconds" not in chat


def test_a_transcription_stream_left_mid_way_still_records_its_seconds(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A caller that reads one chunk of a transcription stream and leaves: the stream is
    read on to its done event, and the usage event holds the seconds Mistral reported."""
    answer = _transcribe(key, stream=True, buffered=False)
    first = next(iter(answer.response))
    answer.close()
    assert b"transcription.done" not in first
    assert _units(gateway) == [("audio.transcriptions.complete", 3 * 10 + 15, 0, 3)]


def test_a_refused_ocr_call_records_no_pages(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """An OCR call Mistral refuses is a failed request of 0 pages."""
    standin.inject("status=400", 1, "ocr.process")
    document = {"type": "document_url", "document_url": "https://example.com/a.pdf"}
    answer = _post(key, "/v1/ocr", {"model": "mistral-ocr-latest", "document": document})
    assert answer.status_code == 400
    assert _units(gateway) == [("ocr.process", 0, 0, 0)]

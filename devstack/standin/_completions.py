"""The stateless operations Mistral meters: chat, fim, agents completions, embeddings,
classifiers and moderations, OCR, audio transcriptions and speech.

Requests are validated with the SDK's own request models (a 422 in Mistral's
HTTPValidationError shape), answers are built from the SDK's response models, and every
answer is deterministic from its input (the same words as `_replies`), with the usage
Mistral reports: `max_tokens` fixes the number of completion tokens (one word, one
stream event each), prompts count one token per word.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Callable, Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from ._replies import _LEAD, _words
from ._sdk import sdk_models, sdk_request
from ._store import Store
from ._wire import ApiError, Event, Reply, new_id, unprocessable

# Agents completions of an agent the store does not hold answer with this model.
_DEFAULT_MODEL = "mistral-small-latest"
# mistral-embed's dimension.
_EMBED_DIMENSION = 1024
_CATEGORIES = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)
# Bytes of "audio" per speech delta event, and delta events per input word.
_AUDIO_CHUNK = 64


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True)


def _text(value: Any) -> str:
    """Every string in a JSON value, joined: what a prompt's words are counted from."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_text(v) for k, v in value.items() if k not in ("role", "type"))
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _usage(prompt: int, completion: int, **extra: Any) -> Any:
    return sdk_models().UsageInfo(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        **extra,
    )


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


# -- chat, fim and agents completions ------------------------------------------------------


def _completion(
    body: Mapping[str, Any], request_model: str, basis: str, model: str, object_: str
) -> Reply:
    stream = body.get("stream") is True
    request = sdk_request(request_model, body)
    max_tokens = getattr(request, "max_tokens", None)
    words = _words(_LEAD, basis, max_tokens if isinstance(max_tokens, int) else None)
    usage = _usage(_tokens(basis), len(words))
    m = sdk_models()
    ident, created = new_id("cmpl"), int(time.time())
    if not stream:
        choice = m.ChatCompletionChoice(
            index=0, finish_reason="stop", message=m.AssistantMessage(content=" ".join(words))
        )
        response_class = m.FIMCompletionResponse if object_ == "fim" else m.ChatCompletionResponse
        response = response_class(
            id=ident,
            object="chat.completion",
            model=model,
            created=created,
            usage=usage,
            choices=[choice],
        )
        return Reply(200, _dump(response))

    def chunk(delta: Any, finish: str | None, with_usage: bool = False) -> Event:
        choice = m.CompletionResponseStreamChoice(index=0, delta=delta, finish_reason=finish)
        fields: dict[str, Any] = {"usage": usage} if with_usage else {}
        data = m.CompletionChunk(
            id=ident,
            object="chat.completion.chunk",
            created=created,
            model=model,
            choices=[choice],
            **fields,
        )
        return ("", _dump(data))

    events = [chunk(m.DeltaMessage(role="assistant", content=""), None)]
    # One chunk per word, each the SDK model's shape: the model is built and dumped once,
    # and its content swapped per word (300 streams of 200 words would otherwise spend
    # the stand-in's CPU on pydantic, which the benchmarks need for the gateway).
    _, shape = chunk(m.DeltaMessage(content=""), None)
    choice = shape["choices"][0]
    events += [
        ("", {**shape, "choices": [{**choice, "delta": {**choice["delta"], "content": piece}}]})
        for piece in ((" " if i else "") + word for i, word in enumerate(words))
    ]
    events.append(chunk(m.DeltaMessage(content=""), "stop", with_usage=True))
    events.append(("", "[DONE]"))
    return Reply(200, events=events)


def _chat(store: Store, body: Any) -> Reply:
    request = "ChatCompletionStreamRequest" if body_streams(body) else "ChatCompletionRequest"
    basis = _text(body.get("messages")) if isinstance(body, dict) else ""
    model = body.get("model") if isinstance(body, dict) else None
    return _completion(body, request, basis, str(model), "chat")


def _fim(store: Store, body: Any) -> Reply:
    request = "FIMCompletionStreamRequest" if body_streams(body) else "FIMCompletionRequest"
    basis = _text([body.get("prompt"), body.get("suffix")]) if isinstance(body, dict) else ""
    model = body.get("model") if isinstance(body, dict) else None
    return _completion(body, request, basis, str(model), "fim")


def _agents(store: Store, body: Any) -> Reply:
    request = "AgentsCompletionStreamRequest" if body_streams(body) else "AgentsCompletionRequest"
    sdk_request(request, body)
    agent = store.get_agent(str(body["agent_id"]), None)
    basis = _text(body.get("messages"))
    return _completion(body, request, basis, str(agent.get("model") or _DEFAULT_MODEL), "chat")


def body_streams(body: Any) -> bool:
    return isinstance(body, dict) and body.get("stream") is True


# -- embeddings, classifiers, moderations -------------------------------------------------


def _plain(value: Any) -> Any:
    """A validated request's field as plain JSON values."""
    if hasattr(value, "model_dump"):
        return _dump(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _inputs(value: Any) -> list[str]:
    value = _plain(value)
    return [value] if isinstance(value, str) else [_text(v) for v in value]


def _unit(seed: int, index: int) -> float:
    """A deterministic number in [0, 1) from a seed and an index."""
    digest = hashlib.sha256(struct.pack(">QI", seed & (2**64 - 1), index)).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _embeddings(store: Store, body: Any) -> Reply:
    request = sdk_request("EmbeddingRequest", body)
    texts = _inputs(request.inputs)
    dimension = request.output_dimension if isinstance(request.output_dimension, int) else None
    size = dimension or _EMBED_DIMENSION
    m = sdk_models()
    data = []
    for index, text in enumerate(texts):
        seed = _seed(text)
        vector = [round(_unit(seed, i) * 2 - 1, 6) for i in range(size)]
        data.append(m.EmbeddingResponseData(object="embedding", embedding=vector, index=index))
    prompt = sum(_tokens(t) for t in texts)
    response = m.EmbeddingResponse(
        id=new_id("emb"), object="list", model=request.model, usage=_usage(prompt, 0), data=data
    )
    return Reply(200, _dump(response))


def _scores(text: str) -> dict[str, float]:
    seed = _seed(text)
    return {name: round(_unit(seed, i) / 4, 6) for i, name in enumerate(_CATEGORIES)}


def _with_usage(payload: dict[str, Any], prompt: int) -> dict[str, Any]:
    # The SDK's classifier and moderation models have no `usage`; Mistral sends it anyway.
    payload["usage"] = _dump(_usage(prompt, 0))
    return payload


def _classification(model: str, texts: list[str]) -> dict[str, Any]:
    m = sdk_models()
    results = [{"safety": m.ClassificationTargetResult(scores=_scores(text))} for text in texts]
    response = m.ClassificationResponse(id=new_id("cls"), model=model, results=results)
    return _with_usage(_dump(response), sum(_tokens(t) for t in texts))


def _moderation(model: str, texts: list[str]) -> dict[str, Any]:
    m = sdk_models()
    results = []
    for text in texts:
        scores = _scores(text)
        categories = {name: score > 0.2 for name, score in scores.items()}
        results.append(m.ModerationObject(categories=categories, category_scores=scores))
    response = m.ModerationResponse(id=new_id("mod"), model=model, results=results)
    return _with_usage(_dump(response), sum(_tokens(t) for t in texts))


def _conversations(value: Any) -> list[str]:
    """One text per conversation of a chat classifier's input (one or many)."""
    value = _plain(value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        return [_text(c) for c in value]
    if isinstance(value, dict):
        return [_text(value.get("messages"))]
    return [_text(value)]


def _classify(store: Store, body: Any) -> Reply:
    request = sdk_request("ClassificationRequest", body)
    return Reply(200, _classification(request.model, _inputs(request.inputs)))


def _classify_chat(store: Store, body: Any) -> Reply:
    request = sdk_request("ChatClassificationRequest", body)
    return Reply(200, _classification(request.model, _conversations(request.input)))


def _moderate(store: Store, body: Any) -> Reply:
    request = sdk_request("ClassificationRequest", body)
    return Reply(200, _moderation(request.model, _inputs(request.inputs)))


def _moderate_chat(store: Store, body: Any) -> Reply:
    request = sdk_request("ChatModerationRequest", body)
    return Reply(200, _moderation(request.model, _conversations(request.inputs)))


# -- OCR --------------------------------------------------------------------------------------


def _ocr(store: Store, body: Any) -> Reply:
    request = sdk_request("OCRRequest", body)
    basis = json.dumps(body.get("document"), sort_keys=True)
    seed = _seed(basis)
    count = 1 + seed % 3
    m = sdk_models()
    pages = []
    for index in range(count):
        words = _words(("Page", str(index + 1)), f"{basis}:{index}", 12)
        pages.append(
            m.OCRPageObject(
                index=index,
                markdown="# " + " ".join(words),
                images=[],
                dimensions=m.OCRPageDimensions(dpi=200, height=2200, width=1700),
            )
        )
    response = m.OCRResponse(
        pages=pages,
        model=request.model or "mistral-ocr-latest",
        usage_info=m.OCRUsageInfo(pages_processed=count, doc_size_bytes=len(basis)),
    )
    return Reply(200, _dump(response))


# -- audio --------------------------------------------------------------------------------


def _form(content_type: str, raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A multipart/form-data body's text fields and its file's bytes."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    fields: dict[str, Any] = {}
    data = b""
    if not message.is_multipart():
        raise unprocessable(
            [{"loc": ["body"], "msg": "Expected a multipart form", "type": "value_error"}]
        )
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            data = payload
            fields[str(name)] = {"file_name": part.get_filename(), "content": payload}
        elif name in ("context_bias", "timestamp_granularities"):
            fields.setdefault(str(name), []).append(_field_text(name, payload))
        elif name is not None:
            fields[str(name)] = _field_text(str(name), payload)
    return fields, data


def _field_text(name: str, payload: bytes) -> str:
    """A form field's text, or the 422 a field that is not UTF-8 gets."""
    try:
        return payload.decode()
    except UnicodeDecodeError:
        raise unprocessable(
            [{"loc": ["body", name], "msg": "Input should be valid UTF-8", "type": "string_type"}]
        ) from None


def _transcription(store: Store, body: Any, content_type: str = "") -> Reply:
    fields, data = _form(content_type, body)
    stream = str(fields.get("stream", "")).lower() == "true"
    if "stream" in fields:
        fields["stream"] = stream
    request = sdk_request(
        "AudioTranscriptionRequestStream" if stream else "AudioTranscriptionRequest", fields
    )
    basis = hashlib.sha256(data or str(fields.get("file_url") or fields.get("file_id")).encode())
    words = _words(("Transcribed",), basis.hexdigest(), 6 + len(data) % 10)
    seconds = max(1, len(data) // 16_000)
    usage = _usage(seconds * 10, len(words), prompt_audio_seconds=seconds)
    text = " ".join(words)
    m = sdk_models()
    segment = m.TranscriptionSegmentChunk(text=text, start=0.0, end=float(seconds))
    if not stream:
        response = m.TranscriptionResponse(
            model=request.model, text=text, usage=usage, language="en", segments=[segment]
        )
        return Reply(200, _dump(response))
    events: list[Event] = [
        (
            "transcription.language",
            _dump(
                m.TranscriptionStreamLanguage(audio_language="en", type="transcription.language")
            ),
        )
    ]
    for i, word in enumerate(words):
        delta = m.TranscriptionStreamTextDelta(
            text=(" " if i else "") + word, type="transcription.text.delta"
        )
        events.append(("transcription.text.delta", _dump(delta)))
    done = m.TranscriptionStreamDone(
        model=request.model,
        text=text,
        usage=usage,
        language="en",
        segments=[segment],
        type="transcription.done",
    )
    events.append(("transcription.done", _dump(done)))
    return Reply(200, events=events)


def _speech(store: Store, body: Any) -> Reply:
    request = sdk_request("SpeechRequest", body)
    words = request.input.split() or [""]
    audio = [hashlib.sha256(f"{i}:{w}".encode()).digest() * 2 for i, w in enumerate(words)]
    usage = _usage(_tokens(request.input), len(audio))
    m = sdk_models()
    if body.get("stream") is not True:
        response = m.SpeechResponse(audio_data=base64.b64encode(b"".join(audio)).decode())
        return Reply(200, _dump(response))
    events: list[Event] = [
        (
            "speech.audio.delta",
            _dump(
                m.SpeechStreamAudioDelta(
                    audio_data=base64.b64encode(piece).decode(), type="speech.audio.delta"
                )
            ),
        )
        for piece in audio
    ]
    done = m.SpeechStreamDone(usage=usage, type="speech.audio.done")
    events.append(("speech.audio.done", _dump(done)))
    return Reply(200, events=events)


# Operations whose body is JSON; audio transcriptions' is multipart (`transcription`).
JSON_HANDLERS: dict[str, Callable[[Store, Any], Reply]] = {
    "chat.complete": _chat,
    "fim.complete": _fim,
    "agents.complete": _agents,
    "embeddings.create": _embeddings,
    "classifiers.classify": _classify,
    "classifiers.classify_chat": _classify_chat,
    "classifiers.moderate": _moderate,
    "classifiers.moderate_chat": _moderate_chat,
    "ocr.process": _ocr,
    "audio.speech.complete": _speech,
}


def transcription(store: Store, raw: bytes, content_type: str) -> Reply:
    try:
        return _transcription(store, raw, content_type)
    except ApiError as error:
        return error.reply()

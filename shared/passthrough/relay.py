"""One metered pass-through call, from a validated `Passthrough` to Mistral's answer.

The caller's bytes go to Mistral unchanged and Mistral's come back unchanged, whole or
chunk by chunk as they arrive. Around them: the key's allow-lists, the agent's owner,
the rate limit and the token reservation before, the settlement from Mistral's `usage`
after and one usage event per call, with the units Mistral bills that are not tokens:
OCR's pages (`usage_info.pages_processed`; OCR settles 0 tokens) and a transcription's
seconds of audio (`usage.prompt_audio_seconds`). A stream's usage is in its last events;
a caller that leaves mid-stream is still charged: the stream is read on, within the
abandoned-stream bounds, to the usage Mistral reports, and a stream that never reports
it keeps its reservation.

A call answered whole takes an Idempotency-Key as a conversation turn does (the same
record, `shared.limits.idempotency`): a repeat gets the first answer, replayed without a
second call, charge or usage event. A streamed call does not (its key is not read).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.calls import Call
from shared.conversations import store
from shared.conversations.sse import SseParser
from shared.conversations.store import Usage
from shared.errors import CircuitOpen, GatewayError
from shared.limits import estimate
from shared.limits.abandoned import read_abandoned
from shared.limits.idempotency import PartsHash, StoredResponse, request_hash
from shared.mistral import Retry, UpstreamStream
from shared.passthrough.request import Passthrough
from shared.resources import check_owned
from shared.tenancy.auth import check_allow_lists

__all__ = ["PassResult", "PassStream", "run_passthrough"]

log = logging.getLogger(__name__)

_JSON = "application/json"
_SSE = "text/event-stream"
# The data of the event that ends chat, fim and agents streams.
_DONE = "[DONE]"
# A model name longer than this is no model name: it is not recorded.
_MAX_MODEL = 200


@dataclass(frozen=True)
class PassResult:
    """Mistral's whole answer, as it sent it."""

    status: int
    body: bytes
    content_type: str
    usage: Usage
    # Headers beyond the content type (`Idempotent-Replayed`).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PassStream:
    """Mistral's stream relayed as it arrives; settled and recorded as `events` ends."""

    events: Iterator[bytes]
    content_type: str = _SSE
    headers: dict[str, str] = field(
        default_factory=lambda: {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def run_passthrough(
    ctx: Call, call: Passthrough, key: str | None = None
) -> PassResult | PassStream:
    """Run a validated pass-through call for `ctx.principal`: allow-lists, ownership of the
    agent, limits, Mistral, settlement and the usage event; a call answered whole, under
    Idempotency-Key `key` if given."""
    ctx.access.model = call.model
    ctx.access.agent_id = call.agent_id
    check_allow_lists(ctx.caller, call.agent_id, call.model)
    files = call.file_ids
    agent: dict[str, Any] | None = None
    if call.agent_id is not None or files:
        # Mistral, behind one API key, cannot tell tenants apart: another tenant's agent
        # or file is refused as a missing one is.
        with ctx.container.pool.connection() as conn:
            if call.agent_id is not None:
                agent = store.require_agent(conn, ctx.owner, call.agent_id)
            check_owned(conn, ctx.owner, "file", files)
    ctx.check_limits(
        lambda: estimate.call_reservation(
            ctx.container.settings, call.operation, call.fields, agent
        )
    )
    if key is not None and not call.stream:
        return _once(ctx, call, key)
    return _run(ctx, call)


def _run(ctx: Call, call: Passthrough) -> PassResult | PassStream:
    """The call through Mistral, settled whatever happens (`_Runner`)."""
    runner = _Runner(ctx, call)
    try:
        return runner.stream() if call.stream else runner.call()
    except GatewayError as exc:
        runner.failed(exc)
        raise
    except Exception:
        runner.settle(Usage())
        raise


def _once(ctx: Call, call: Passthrough, key: str) -> PassResult:
    """The call once under the tenant's `key`: a repeat with the same body (JSON compared
    as JSON, multipart by its parts) gets the first answer and spends nothing."""
    ran: list[PassResult] = []
    started = False

    def run() -> StoredResponse:
        nonlocal started
        started = True  # from here the runner settles the reservation, whatever happens
        result = _run(ctx, call)
        assert isinstance(result, PassResult)
        ran.append(result)
        return StoredResponse(result.status, {"Content-Type": result.content_type}, result.body)

    if call.content_type == _JSON:
        body: Any = call.fields
    else:
        parts = PartsHash(call.content_type)
        parts.update(call.raw)
        body = {"multipart": parts.hexdigest()}
    digest = request_hash(call.operation, call.path, body)
    try:
        stored, replayed = ctx.container.idempotency.once(
            ctx.owner, key, call.operation, digest, run
        )
    except Exception:
        # Refused before the call (the key used with another body, or still running):
        # the reservation is given back.
        if not started and ctx.decision is not None:
            ctx.container.limiter.settle(ctx.decision, 0)
        raise
    if not replayed:
        return ran[0]
    ctx.access.idempotent_replay = True
    if ctx.decision is not None:
        ctx.container.limiter.settle(ctx.decision, 0)
    content_type = stored.headers.get("Content-Type", _JSON)
    return PassResult(
        stored.status, stored.body, content_type, Usage(), {"Idempotent-Replayed": "true"}
    )


def _model_of(answer: Any) -> str | None:
    """The model a Mistral answer (or stream event) names, if it names one."""
    model = answer.get("model") if isinstance(answer, dict) else None
    return model if isinstance(model, str) and len(model) <= _MAX_MODEL else None


def usage_of(answer: Any) -> Usage:
    """The tokens, OCR pages and audio seconds a Mistral answer (or stream event) reports;
    none when it reports none."""
    return Usage.of_answer(answer)


class _Runner:
    """Carries one call through Mistral, its settlement and its usage event."""

    def __init__(self, ctx: Call, call: Passthrough) -> None:
        self.ctx = ctx
        self.passthrough = call
        self.mistral = ctx.container.mistral
        self.settled = False

    def call(self) -> PassResult:
        call = self.passthrough
        answer = self.mistral.call(
            call.operation,
            "POST",
            call.path,
            call.raw,
            retry=Retry.UNSENT,
            content_type=call.content_type,
        )
        self.ctx.access.upstream_latency_ms = round(answer.latency_ms, 2)
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            body = None
        usage = usage_of(body)
        self.finish(200, usage, model=_model_of(body))
        content_type = answer.headers.get("content-type", _JSON)
        return PassResult(200, answer.body, content_type, usage)

    def stream(self) -> PassStream:
        call = self.passthrough
        upstream = self.mistral.stream(
            call.operation, call.path, call.raw, content_type=call.content_type
        )
        self.ctx.access.upstream_latency_ms = round(upstream.latency_ms, 2)
        content_type = upstream.response.headers.get("content-type", _SSE)
        return PassStream(self._relay(upstream), content_type)

    def _relay(self, upstream: UpstreamStream) -> Iterator[bytes]:
        watcher = _UsageWatcher()
        caller_left = False
        chunks = upstream.chunks()
        try:
            for chunk in chunks:
                watcher.feed(chunk)
                yield chunk
            watcher.close()
        except GatewayError as exc:
            # The status line is gone: the caller sees the stream end without its last event.
            log.warning("upstream stream broke: %s", exc.message)
            self.ctx.access.error_type = "upstream_stream_broken"
        except GeneratorExit:
            caller_left = True
            self.ctx.access.error_type = "client_disconnected"
            self._drain(chunks, watcher)
            raise
        finally:
            upstream.close(watcher.done or caller_left)
            # A stream that ended without its usage may have cost what it reserved, and
            # Mistral did not say: it keeps its reservation rather than spending nothing.
            reserved = self.ctx.decision.reserved_tokens if self.ctx.decision else 0
            spent = watcher.usage
            if not watcher.done and spent.total < reserved:
                spent = Usage(spent.prompt_tokens, reserved - spent.prompt_tokens)
            self.finish(200, watcher.usage, charge=spent.total, model=watcher.model)

    def _drain(self, chunks: Iterator[bytes], watcher: _UsageWatcher) -> None:
        """Read on a stream the caller left, to the usage Mistral reports at its end."""
        done = read_abandoned(chunks, watcher, self.ctx.container.settings)
        self.ctx.access.abandoned_stream_read = done

    def settle(self, usage: Usage, charge: int | None = None) -> None:
        """Replace the reservation by what the call cost (once)."""
        if self.settled:
            return
        self.settled = True
        if self.ctx.decision is not None:
            total = usage.total if charge is None else charge
            self.ctx.container.limiter.settle(self.ctx.decision, total)

    def failed(self, exc: GatewayError) -> None:
        """Mistral refused or failed the call: nothing spent, the call still counted (but
        not when the open circuit kept it from Mistral)."""
        if isinstance(exc, CircuitOpen):
            self.settle(Usage())
        else:
            self.finish(exc.status, Usage())

    def finish(
        self, status: int, usage: Usage, *, charge: int | None = None, model: str | None = None
    ) -> None:
        """Settle the reservation, fill in the access line and write the usage event. The
        model is the body's, else the one Mistral answered with (an agent's)."""
        ctx, call = self.ctx, self.passthrough
        self.settle(usage, charge)
        model = call.model or model
        ctx.access.model = model
        ctx.access.tokens_in = usage.prompt_tokens
        ctx.access.tokens_out = usage.completion_tokens
        # Only where Mistral bills them: the line of a chat call does not carry zeros.
        ctx.access.pages = usage.pages or None
        ctx.access.audio_seconds = usage.audio_seconds or None
        if self.mistral.breaker is not None:
            ctx.access.circuit = self.mistral.breaker.current()
        event = store.UsageEvent(
            owner=ctx.owner,
            key_id=ctx.caller.key_id,
            operation=call.operation,
            status=status,
            usage=usage,
            agent_id=call.agent_id,
            model=model,
            conversation_id=None,
        )
        try:
            # One statement, autocommitted: no transaction's two extra round trips.
            with ctx.container.pool.connection() as conn:
                store.record_usage(conn, event)
        except Exception:  # the answer Mistral gave still goes out
            log.exception("usage of a %s call not recorded", call.operation)


class _UsageWatcher:
    """Reads the relayed events for the usage Mistral reports and the stream's end."""

    def __init__(self) -> None:
        self.parser = SseParser()
        self.usage = Usage()
        self.model: str | None = None
        self.done = False

    def feed(self, chunk: bytes) -> None:
        for event in self.parser.feed(chunk):
            self._see(event.data)

    def close(self) -> None:
        for event in self.parser.close():
            self._see(event.data)

    def _see(self, data: str) -> None:
        if data.strip() == _DONE:
            self.done = True
            return
        if '"usage"' not in data and '"type"' not in data:
            return  # a delta without usage: no need to parse it
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            return
        if not isinstance(payload, dict):
            return
        if isinstance(payload.get("usage"), dict):
            self.usage = usage_of(payload)
            self.model = _model_of(payload) or self.model
        kind = payload.get("type")
        # Speech and transcription streams end with a `*.done` event, chat's with [DONE].
        if isinstance(kind, str) and kind.endswith(".done"):
            self.done = True

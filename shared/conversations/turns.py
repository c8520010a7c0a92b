"""One conversation turn (start, append or restart), from request to stored entries.

    validate -> own -> rate limit + token reservation -> idempotency claim
      -> Mistral (relayed as it arrives, when streaming) -> store -> answer

The caller's body is forwarded as sent, so fields the gateway does not know
reach Mistral; Mistral's answer is relayed as sent, so fields the gateway does
not know reach the caller. After the turn the gateway stores the conversation
as Mistral holds it (its history), atomically with the usage event.
If that write fails after Mistral answered, the caller still gets Mistral's
answer, told plainly in `Gateway-Stored: false` that it was not stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.calls import Call
from shared.container import Container
from shared.conversations import store
from shared.conversations import unstored as unstored_turns
from shared.conversations.policy import InputPolicy
from shared.conversations.sse import SseParser, format_event
from shared.conversations.store import Usage
from shared.errors import (
    GatewayError,
    NotFound,
    UpstreamUnavailable,
    ValidationFailed,
    field_error,
)
from shared.limits import estimate
from shared.limits.abandoned import read_abandoned
from shared.limits.idempotency import Claim, Idempotency, StoredResponse, request_hash
from shared.mistral import MistralClient, Retry, UpstreamStream
from shared.resources import check_owned, library_ids_in_tools
from shared.tenancy.auth import check_allow_lists
from shared.timestamps import now_rfc3339

__all__ = [
    "Turn",
    "TurnResult",
    "TurnStream",
    "build_turn",
    "read_history",
    "run_turn",
    "store_from_history",
]

log = logging.getLogger(__name__)

_JSON = "application/json"
_SSE = "text/event-stream"
# Ends a stream whose turn could not be stored: its headers left long before, so the
# caller is told in the stream, as an SSE comment (every SSE parser skips comments).
_UNSTORED = b": gateway-stored: false\n\n"


@dataclass
class Turn:
    operation: str  # conversations.start | conversations.append | conversations.restart
    path: str
    body: dict[str, Any]
    raw: bytes
    conversation_id: str | None = None
    stream: bool = False
    policy_hits: list[Any] = field(default_factory=list)

    @property
    def agent_id(self) -> str | None:
        value = self.body.get("agent_id")
        return value if isinstance(value, str) else None

    @property
    def model(self) -> str | None:
        value = self.body.get("model")
        return value if isinstance(value, str) else None

    @property
    def stores(self) -> bool:
        """Mistral keeps the conversation unless `store` is false; so does the gateway."""
        return self.body.get("store") is not False


@dataclass(frozen=True)
class TurnResult:
    """A turn's whole answer (not streamed, or replayed under its Idempotency-Key)."""

    status: int
    # The answer as the caller gets it: Mistral's bytes as sent, or the stored ones.
    body: bytes
    content_type: str
    # Headers of the answer beyond its content type (Gateway-Stored, Idempotent-Replayed).
    headers: dict[str, str]
    # False when Mistral answered but the gateway could not store the turn.
    stored: bool
    usage: Usage
    conversation_id: str | None
    # `body` as a JSON object, when it is one.
    answer: dict[str, Any] | None = None
    replayed: bool = False


@dataclass
class TurnStream:
    """A streamed turn: Mistral's events relayed as they arrive (SSE bytes, each chunk
    as read). The turn is stored, and its access fields filled in, as `events` ends."""

    events: Iterator[bytes]
    content_type: str = _SSE
    headers: dict[str, str] = field(
        default_factory=lambda: {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _check_types(body: dict[str, Any], spec: dict[str, tuple[type, ...]]) -> list[dict[str, Any]]:
    problems = []
    for name, kinds in spec.items():
        value = body.get(name)
        # JSON has one number type: 1.0 is the integer 1 (JSON Schema, and Mistral's pydantic).
        whole = int in kinds and isinstance(value, float) and value.is_integer()
        if value is not None and not whole and not isinstance(value, kinds):
            # bool is an int in Python; an int field given true is still wrong.
            expected = " or ".join(k.__name__ for k in kinds)
            problems.append(field_error(("body", name), f"Input should be {expected}", "type"))
        elif name in body and isinstance(body[name], bool) and bool not in kinds:
            problems.append(field_error(("body", name), "Input should not be a boolean", "type"))
    return problems


_COMMON: dict[str, tuple[type, ...]] = {
    "inputs": (str, list),
    "stream": (bool,),
    "store": (bool,),
    "completion_args": (dict,),
    "metadata": (dict,),
    "handoff_execution": (str,),
    "guardrails": (list,),
    "agent_version": (int, str),
}
_START: dict[str, tuple[type, ...]] = {
    **_COMMON,
    "model": (str,),
    "agent_id": (str,),
    "instructions": (str,),
    "tools": (list,),
    "name": (str,),
    "description": (str,),
}
_APPEND: dict[str, tuple[type, ...]] = {
    **_COMMON,
    "tool_confirmations": (list,),
    "agent_id": (str,),
}
_RESTART: dict[str, tuple[type, ...]] = {**_COMMON, "from_entry_id": (str,), "agent_id": (str,)}


_JSON_TYPES = {str: "string", list: "array", dict: "object", bool: "boolean", int: "integer"}


def body_rules() -> dict[str, dict[str, Any]]:
    """Operation -> what `build_turn` refuses beyond Mistral's schema, as JSON Schema (the
    OpenAPI document combines it with the SDK's request model). Built from the same type
    tables and input policy `build_turn` checks with; only the document calls it.

    Why `build_turn` checks by hand instead of validating with the SDK's pydantic models:
    `TypeAdapter(ConversationRequest).validate_json` costs ~83 us per body where
    `build_turn` costs ~17 us, and importing the models ~650 ms at a cold start (measured
    on the 2-core dev machine, best of 5 x 20,000); Mistral validates the body anyway. The
    hand checks are proven equal to the document's schema (the SDK model's with these
    rules) on a corpus by tests/unit/test_body_rules.py.
    """
    from shared.config import Settings
    from shared.conversations.policy import TEXT_PATHS, text_schema

    def rules(spec: dict[str, tuple[type, ...]], *required: str, **extra: Any) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for name, kinds in spec.items():
            types = [_JSON_TYPES[kind] for kind in kinds]
            properties[name] = {"type": types if name in required else [*types, "null"]}
        properties["inputs"]["items"] = {"type": "object"}
        properties["handoff_execution"]["enum"] = list(_HANDOFFS)
        return {
            "type": "object",
            "properties": properties,
            "required": list(required),
            # The input policy's text rule, put by the document on every string at these paths.
            "x-text": {"paths": [list(p) for p in TEXT_PATHS], "schema": text},
            **extra,
        }

    text = text_schema(Settings.max_input_chars)

    exactly_one = [
        {"required": [one], "properties": {one: {"type": "string"}, other: {"type": "null"}}}
        for one, other in (("model", "agent_id"), ("agent_id", "model"))
    ]
    confirmations = {"type": "array", "minItems": 1}
    return {
        "conversations.start": rules(
            _START,
            "inputs",
            oneOf=exactly_one,
            description="Exactly one of `model` and `agent_id`.",
        ),
        "conversations.append": rules(
            _APPEND,
            anyOf=[
                {"required": ["inputs"], "properties": {"inputs": {"not": {"type": "null"}}}},
                {
                    "required": ["tool_confirmations"],
                    "properties": {"tool_confirmations": confirmations},
                },
            ],
            description="`inputs`, or a non-empty `tool_confirmations`, or both.",
        ),
        "conversations.restart": rules(_RESTART, "from_entry_id"),
    }


# The values `handoff_execution` may take (None: left out).
_HANDOFFS = ("client", "server", None)


def build_turn(
    policy: InputPolicy,
    operation: str,
    path: str,
    body: dict[str, Any],
    raw: bytes | None,
    conversation_id: str | None = None,
) -> Turn:
    """Validate a turn's body (422 naming every problem) and apply the input policy.

    `raw` is forwarded unchanged unless the policy redacted something; None means
    the body has no original bytes (a batch item) and is serialised here.
    """
    spec = {"conversations.start": _START, "conversations.append": _APPEND}.get(operation, _RESTART)
    problems = _check_types(body, spec)
    inputs = body.get("inputs")
    if operation == "conversations.start":
        if inputs is None:
            problems.append(field_error(("body", "inputs"), "Field required", "missing"))
        if (body.get("model") is None) == (body.get("agent_id") is None):
            problems.append(
                field_error(
                    ("body",),
                    "Value error, exactly one of 'model' or 'agent_id' must be provided",
                    "value_error",
                )
            )
    elif operation == "conversations.append":
        if inputs is None and not body.get("tool_confirmations"):
            problems.append(
                field_error(
                    ("body", "inputs"), "inputs or tool_confirmations is required", "missing"
                )
            )
    elif not isinstance(body.get("from_entry_id"), str):
        problems.append(field_error(("body", "from_entry_id"), "Field required", "missing"))
    if isinstance(inputs, list):
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                problems.append(
                    field_error(
                        ("body", "inputs", i), "Input should be an entry object", "dict_type"
                    )
                )
    if body.get("handoff_execution") not in _HANDOFFS:
        problems.append(
            field_error(
                ("body", "handoff_execution"), "Input should be 'client' or 'server'", "enum"
            )
        )
    if problems:
        raise ValidationFailed(problems)
    changed, hits = policy.apply(body)
    if changed or raw is None:
        raw = json.dumps(body, separators=(",", ":")).encode()
    return Turn(
        operation=operation,
        path=path,
        body=body,
        raw=raw,
        conversation_id=conversation_id,
        stream=body.get("stream") is True,
        policy_hits=hits,
    )


def run_turn(ctx: Call, turn: Turn, key: str | None = None) -> TurnResult | TurnStream:
    """Run a validated turn for `ctx.principal` under Idempotency-Key `key`: ownership,
    limits, idempotency, Mistral, storage. The start function's HTTP handler and the
    batch function's items both call this; neither is known to it."""
    ctx.access.policy_hits = len(turn.policy_hits) or None
    owner = ctx.owner
    agent_id, model = turn.agent_id, turn.model
    # A start with a model reads nothing before Mistral: no connection is taken for it.
    if turn.operation != "conversations.start":
        assert turn.conversation_id is not None
        ref = _own_conversation(ctx, turn.conversation_id)
        ctx.access.agent_id = ref.agent_id
        ctx.access.model = ref.model
        agent_id, model = agent_id or ref.agent_id, model or ref.model
    if turn.operation == "conversations.restart":
        # The entry must be this conversation's: another tenant's is refused as a missing
        # one is, before Mistral (behind one API key) is asked.
        assert turn.conversation_id is not None
        with ctx.container.pool.connection() as conn:
            store.require_entry(
                conn, owner, turn.conversation_id, str(turn.body.get("from_entry_id"))
            )
    check_allow_lists(ctx.caller, agent_id, None if agent_id else model)
    # Any turn's body may name an agent (an append or restart body is forwarded as sent):
    # it must be the caller's, since Mistral, behind one API key, cannot tell tenants
    # apart and a restart would store it on the new conversation.
    agent: dict[str, Any] | None = None
    if turn.agent_id:
        with ctx.container.pool.connection() as conn:
            agent = store.require_agent(conn, owner, turn.agent_id)
    # So must every library a `document_library` tool names (shared.resources).
    if libraries := library_ids_in_tools(turn.body.get("tools")):
        check_owned(ctx.container.pool, owner, "library", libraries)
    if turn.operation == "conversations.start":
        ctx.access.agent_id = turn.agent_id
        ctx.access.model = turn.model
    ctx.access.conversation_id = turn.conversation_id
    decision = ctx.check_limits(lambda: _reservation(ctx, turn, agent))

    idempotency: Idempotency | None = None
    digest = b""
    if key is not None:
        idempotency = ctx.container.idempotency
        digest = request_hash(turn.operation, turn.path, turn.body)
        try:
            claim: Claim = idempotency.claim(
                owner, Idempotency.validate_key(key), turn.operation, digest
            )
        except Exception:
            # Refused before Mistral (another body, still running, a malformed key):
            # nothing was spent, so the reservation is given back.
            ctx.container.limiter.settle(decision, 0)
            raise
        if claim.replay is not None:
            ctx.access.idempotent_replay = True
            ctx.container.limiter.settle(decision, 0)
            return _replay(claim.replay)
        made = None
        if turn.operation != "conversations.append":
            made = unstored_turns.started(ctx.container.redis, owner, key, digest)
        if made is not None:
            ctx.container.limiter.settle(decision, 0)
            return _recover_start(ctx, turn, idempotency, key, made)

    runner = _TurnRunner(ctx, turn, idempotency, key)
    runner.digest = digest
    try:
        if turn.stream:
            return runner.stream()
        return runner.call()
    except Exception:
        runner.abandon()
        raise


def _reservation(ctx: Call, turn: Turn, agent: dict[str, Any] | None) -> int:
    """The turn's token reservation (`shared.limits.estimate`), asked only when a budget
    is on; a start reads nothing more (its agent was read with its ownership)."""
    settings = ctx.container.settings
    if turn.conversation_id is None:
        return estimate.turn_reservation(None, settings, ctx.owner, turn.body, None, agent)
    with ctx.container.pool.connection() as conn:
        return estimate.turn_reservation(
            conn, settings, ctx.owner, turn.body, turn.conversation_id, agent
        )


def _recover_start(
    ctx: Call, turn: Turn, idempotency: Idempotency, key: str, conversation_id: str
) -> TurnResult:
    """Answer a repeated start whose first attempt Mistral answered (it made
    `conversation_id`) but the gateway failed after: store that conversation if it is
    not, and answer with its turn, instead of asking Mistral for a second one."""
    ctx.access.idempotent_recovered = True
    ctx.access.conversation_id = conversation_id
    owner = ctx.owner
    try:
        if not _stored(ctx, conversation_id):
            unstored = unstored_turns.take(ctx.container.redis, conversation_id, owner)
            if unstored is not None:
                _store_unstored(ctx, conversation_id, unstored)
            else:
                _store_lost_start(ctx, turn, conversation_id)
        with ctx.container.pool.connection() as conn:
            # A start's own turn is its first; a restart's, after the history it copied.
            outputs, usage = store.stored_turn(
                conn, owner, conversation_id, first=turn.operation == "conversations.start"
            )
    except Exception:
        try:
            idempotency.release(owner, key)
        except GatewayError:
            log.warning("could not release idempotency key")
        raise
    answer = {
        "object": "conversation.response",
        "conversation_id": conversation_id,
        "outputs": outputs,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total,
        },
    }
    if turn.stream:
        stored = StoredResponse(200, {"Content-Type": _SSE}, _as_events(answer))
    else:
        body = json.dumps(answer, separators=(",", ":")).encode()
        stored = StoredResponse(200, {}, body)
    try:
        idempotency.complete(owner, key, stored)
    except Exception:  # any refusal: the recovered answer still goes out
        log.warning("idempotency record of a recovered start could not be completed")
    return _replay(stored)


def _stored(ctx: Call, conversation_id: str) -> bool:
    with ctx.container.pool.connection() as conn:
        row = conn.one(
            "SELECT 1 AS found FROM conversations WHERE id = :id AND owner_id = :owner",
            id=conversation_id,
            owner=ctx.owner,
        )
    return row is not None


def _store_lost_start(ctx: Call, turn: Turn, conversation_id: str) -> None:
    """Store a conversation whose start was never stored nor remembered (the instance
    died first), from Mistral's history; the lost answer's usage is not known."""
    runner = _TurnRunner(ctx, turn, None, None)
    new = dict(turn.body)
    parent = None
    if turn.operation == "conversations.restart":
        new.update(runner._source_fields())
        parent = (str(turn.conversation_id), str(turn.body.get("from_entry_id")))
    store_from_history(
        ctx.container,
        conversation_id,
        store.UsageEvent(
            owner=ctx.owner,
            key_id=ctx.caller.key_id,
            operation=turn.operation,
            status=200,
            usage=Usage(),
            agent_id=ctx.access.agent_id,
            model=ctx.access.model,
            conversation_id=conversation_id,
        ),
        new=new,
        parent=parent,
    )


def _as_events(answer: dict[str, Any]) -> bytes:
    """A conversation response as the event stream Mistral would have sent for it."""
    conversation_id = answer["conversation_id"]
    stamp = now_rfc3339()
    events = [
        {
            "type": "conversation.response.started",
            "conversation_id": conversation_id,
            "created_at": stamp,
        }
    ]
    for index, output in enumerate(answer["outputs"]):
        common = {"output_index": index, "id": output.get("id"), "model": output.get("model")}
        common |= {"agent_id": output.get("agent_id"), "created_at": output.get("created_at")}
        if output.get("type") == "message.output":
            content = output.get("content")
            pieces = content if isinstance(content, list) else [content]
            events.extend(
                {**common, "type": "message.output.delta", "role": "assistant"}
                | {"content": piece, "content_index": i}
                for i, piece in enumerate(pieces)
            )
        elif output.get("type") == "function.call":
            events.append(
                {**common, "type": "function.call.delta", "name": output.get("name")}
                | {"tool_call_id": output.get("tool_call_id")}
                | {"arguments": output.get("arguments")}
            )
    events.append(
        {"type": "conversation.response.done", "usage": answer["usage"], "created_at": stamp}
    )
    return b"".join(format_event(event) for event in events)


def _own_conversation(ctx: Call, conversation_id: str) -> store.ConversationRef:
    """The caller's stored conversation; one whose first write failed after Mistral made
    it (`shared.conversations.unstored`) is stored from Mistral's history first. 404 otherwise."""
    try:
        with ctx.container.pool.connection() as conn:
            return store.load_conversation(conn, ctx.owner, conversation_id)
    except NotFound:
        unstored = unstored_turns.take(ctx.container.redis, conversation_id, ctx.owner)
        if unstored is None:
            raise
    try:
        _store_unstored(ctx, conversation_id, unstored)
    except Exception:
        unstored_turns.remember(ctx.container.redis, conversation_id, unstored)
        raise
    with ctx.container.pool.connection() as conn:
        return store.load_conversation(conn, ctx.owner, conversation_id)


def _store_unstored(ctx: Call, conversation_id: str, unstored: unstored_turns.Unstored) -> None:
    store_from_history(
        ctx.container,
        conversation_id,
        store.UsageEvent(
            owner=unstored.owner,
            key_id=unstored.key_id,
            operation=unstored.operation,
            status=200,
            usage=Usage(unstored.prompt_tokens, unstored.completion_tokens),
            agent_id=unstored.agent_id,
            model=unstored.model,
            conversation_id=conversation_id,
        ),
        new=unstored.fields,
        parent=(unstored.parent[0], unstored.parent[1]) if unstored.parent else None,
    )
    log.warning(
        "conversation %s stored from Mistral's history after a failed write", conversation_id
    )


def read_history(mistral: MistralClient, conversation_id: str) -> list[dict[str, Any]]:
    """Mistral's own history of a conversation: its entries, or UpstreamUnavailable."""
    answer = mistral.call(
        "conversations.history",
        "GET",
        f"/v1/conversations/{urllib.parse.quote(conversation_id, safe='')}/history",
        retry=Retry.IDEMPOTENT,
    )
    try:
        entries = answer.json().get("entries")
    except (ValueError, RecursionError, AttributeError) as exc:
        raise UpstreamUnavailable("Mistral's history of the conversation is unreadable") from exc
    if not isinstance(entries, list):
        raise UpstreamUnavailable("Mistral's history of the conversation has no entries list")
    return [e for e in entries if isinstance(e, dict)]


def store_from_history(
    container: Container,
    conversation_id: str,
    event: store.UsageEvent,
    *,
    new: dict[str, Any],
    parent: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Store a conversation the gateway missed (its creating turn was never stored) as
    Mistral's history holds it, with `event`; returns the entries."""
    entries = read_history(container.mistral, conversation_id)
    store.save_turn(
        container.pool, event=event, entries=[dict(e) for e in entries], new=new, parent=parent
    )
    return entries


def _replay(stored: StoredResponse) -> TurnResult:
    """The answer an earlier request under the same Idempotency-Key was given."""
    headers = {**stored.headers, "Idempotent-Replayed": "true"}
    content_type = headers.pop("Content-Type", _JSON)
    answer = None
    if content_type == _JSON and stored.status == 200:
        with contextlib.suppress(UpstreamUnavailable):
            answer = _answer_body(stored.body)
    conversation_id = answer.get("conversation_id") if answer else None
    return TurnResult(
        status=stored.status,
        body=stored.body,
        content_type=content_type,
        headers=headers,
        stored=stored.headers.get("Gateway-Stored") != "false",
        usage=Usage.from_json(answer.get("usage")) if answer else Usage(),
        conversation_id=conversation_id if isinstance(conversation_id, str) else None,
        answer=answer,
        replayed=True,
    )


def _answer_body(raw: bytes) -> dict[str, Any]:
    """Mistral's 200 answer as a JSON object; 502 if it is not one (nothing is stored)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise UpstreamUnavailable("Mistral answered with a body that is not a JSON object")
    return body


class _TurnRunner:
    """Carries one turn through Mistral and into the database."""

    def __init__(
        self, ctx: Call, turn: Turn, idempotency: Idempotency | None, key: str | None
    ) -> None:
        self.ctx = ctx
        self.turn = turn
        self.idempotency = idempotency
        self.key = key
        self.mistral: MistralClient = ctx.container.mistral
        self.settled = False
        # The request's hash under its Idempotency-Key (empty without one).
        self.digest = b""
        self._remembered = False

    # -- non-streaming -------------------------------------------------------------

    def call(self) -> TurnResult:
        answer = self.mistral.call(
            self.turn.operation, "POST", self.turn.path, self.turn.raw, retry=Retry.UNSENT
        )
        self.ctx.access.upstream_latency_ms = round(answer.latency_ms, 2)
        body = _answer_body(answer.body)
        conversation_id = body.get("conversation_id") or self.turn.conversation_id
        if not isinstance(conversation_id, str):
            raise UpstreamUnavailable("Mistral's answer names no conversation")
        self._remember_start(conversation_id)
        outputs = [o for o in body.get("outputs") or [] if isinstance(o, dict)]
        usage = Usage.from_json(body.get("usage"))
        stored = self._store(conversation_id, outputs, usage, incomplete=False)
        headers = {} if stored else {"Gateway-Stored": "false"}
        self._finish(200, headers, answer.body)
        return TurnResult(
            status=200,
            body=answer.body,
            content_type=_JSON,
            headers=headers,
            stored=stored,
            usage=usage,
            conversation_id=conversation_id,
            answer=body,
        )

    # -- streaming -----------------------------------------------------------------

    def stream(self) -> TurnStream:
        upstream = self.mistral.stream(self.turn.operation, self.turn.path, self.turn.raw)
        self.ctx.access.upstream_latency_ms = round(upstream.latency_ms, 2)
        return TurnStream(events=self._relay(upstream))

    def _relay(self, upstream: UpstreamStream) -> Iterator[bytes]:
        watcher = _StreamWatcher()
        sent: list[bytes] = []
        ok = False
        # Set when the caller went away: not Mistral's failure, so not the breaker's business.
        caller_left = False
        # Set once the stream is relayed; the rest of the work then happens in the body.
        finished = False
        chunks = upstream.chunks()
        try:
            try:
                for chunk in chunks:
                    watcher.feed(chunk)
                    if watcher.conversation_id and not self._remembered:
                        self._remember_start(watcher.conversation_id)
                    sent.append(chunk)
                    yield chunk
                watcher.close()
                ok = watcher.done
            except GatewayError as exc:
                log.warning("upstream stream broke: %s", exc.message)
            except GeneratorExit:
                caller_left = True
                self.ctx.access.error_type = "client_disconnected"
                raise
            if not ok:
                # Never a silent clean end: the SDK yields this event to the caller.
                error = format_event(
                    {
                        "type": "conversation.response.error",
                        "message": "the upstream stream ended before the response was complete",
                        "code": 502,
                    }
                )
                sent.append(error)
                yield error
            finished = True
            upstream.close(ok)
            if not self._after_stream(watcher, ok, b"".join(sent)):
                yield _UNSTORED
        finally:
            if not finished:
                if caller_left:
                    ok = self._drain(chunks, watcher, sent)
                upstream.close(ok or caller_left)
                self._after_stream(watcher, ok, b"".join(sent))

    def _drain(self, chunks: Iterator[bytes], watcher: _StreamWatcher, sent: list[bytes]) -> bool:
        """Read on a stream the caller left, within the settings' bounds; True if it ended.

        Mistral goes on producing (and billing) the turn whoever left: read to its end,
        the turn is charged the usage Mistral reports and stored whole.
        """
        done = read_abandoned(chunks, watcher, self.ctx.container.settings, sent.append)
        self.ctx.access.abandoned_stream_read = done
        return done

    def _after_stream(self, watcher: _StreamWatcher, ok: bool, body: bytes) -> bool:
        """Store the streamed turn; False if the database refused it."""
        conversation_id = watcher.conversation_id or self.turn.conversation_id
        stored = True
        if conversation_id:
            stored = self._store(
                conversation_id, watcher.entries(), watcher.usage, incomplete=not ok
            )
        self.ctx.access.conversation_id = conversation_id
        if not ok and self.ctx.access.error_type is None:
            self.ctx.access.error_type = "upstream_stream_broken"
        self._finish(200, {"Content-Type": _SSE}, body if stored else body + _UNSTORED)
        return stored

    # -- shared --------------------------------------------------------------------

    def _remember_start(self, conversation_id: str) -> None:
        """Keep the conversation an idempotent start made, until its record completes."""
        self._remembered = True
        if self.key is None or not self.digest or self.turn.operation == "conversations.append":
            return
        unstored_turns.remember_start(
            self.ctx.container.redis,
            self.ctx.owner,
            self.key,
            self.digest,
            conversation_id,
            self.ctx.container.settings.idempotency_ttl_s,
        )

    def _store(
        self,
        conversation_id: str,
        outputs: list[dict[str, Any]],
        usage: Usage,
        *,
        incomplete: bool,
    ) -> bool:
        """Store the turn; False (logged) if the database refused after Mistral answered."""
        ctx, turn = self.ctx, self.turn
        ctx.access.conversation_id = conversation_id
        ctx.access.tokens_in = usage.prompt_tokens
        ctx.access.tokens_out = usage.completion_tokens
        if not self.settled and ctx.decision is not None:
            # A turn that did not finish may have cost what it reserved, and Mistral did
            # not say: it keeps its reservation rather than spending nothing.
            spent = max(usage.total, ctx.decision.reserved_tokens) if incomplete else usage.total
            ctx.container.limiter.settle(ctx.decision, spent)
            self.settled = True
        entries = self._history(conversation_id, outputs, incomplete) if turn.stores else []
        new = None
        parent = None
        if turn.operation != "conversations.append":
            new = dict(turn.body)
            if turn.operation == "conversations.restart":
                new.update(self._source_fields())
                parent = (str(turn.conversation_id), str(turn.body.get("from_entry_id")))
            if isinstance(new.get("agent_id"), str):
                new["agent_version"] = self._resolved_version(
                    new["agent_id"], new.get("agent_version")
                )
        incomplete_ids = frozenset(str(o.get("id")) for o in outputs if incomplete and o.get("id"))
        event = store.UsageEvent(
            owner=ctx.owner,
            key_id=ctx.caller.key_id,
            operation=turn.operation,
            status=200,
            usage=usage,
            agent_id=ctx.access.agent_id,
            model=ctx.access.model,
            conversation_id=conversation_id,
        )
        try:
            store.save_turn(
                ctx.container.pool,
                event=event,
                entries=entries,
                new=new,
                parent=parent,
                incomplete_ids=incomplete_ids,
                stores=turn.stores,
            )
        except Exception:
            log.exception(
                "turn of conversation %s answered by Mistral but not stored", conversation_id
            )
            ctx.access.stored = False
            if new is not None and turn.stores:
                # The caller knows a conversation the database does not: keep what storing
                # it needs, so the next turn on it stores it rather than answering 404.
                unstored = unstored_turns.Unstored(
                    owner=event.owner,
                    key_id=event.key_id,
                    operation=event.operation,
                    fields=new,
                    parent=list(parent) if parent else None,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    agent_id=event.agent_id,
                    model=event.model,
                )
                unstored_turns.remember(ctx.container.redis, conversation_id, unstored)
            return False
        return True

    def _source_fields(self) -> dict[str, Any]:
        """A restarted conversation keeps its source's agent or model."""
        with self.ctx.container.pool.connection() as conn:
            row = conn.one(
                "SELECT agent_id, agent_version, model, instructions, tools, completion_args,"
                " name, description, metadata FROM conversations WHERE id = :id"
                " AND owner_id = :owner",
                id=self.turn.conversation_id,
                owner=self.ctx.owner,
            )
        fields = {k: v for k, v in (row or {}).items() if v is not None}
        if "agent_version" in self.turn.body:
            fields["agent_version"] = self.turn.body["agent_version"]
        if "metadata" in self.turn.body:
            fields["metadata"] = self.turn.body["metadata"]
        return fields

    def _resolved_version(self, agent_id: str, asked: Any) -> int | None:
        """The agent version Mistral ran, as it reports it on the conversation: an integer.

        None (the agent's current version) is left to the insert, which reads it from the
        agents table; an alias is asked of Mistral (one call, only when an alias was sent).
        """
        if isinstance(asked, int) and not isinstance(asked, bool):
            return asked
        if not isinstance(asked, str):
            return None
        if asked.isascii() and asked.isdigit():
            return int(asked)
        path = f"/v1/agents/{urllib.parse.quote(agent_id, safe='')}?" + urllib.parse.urlencode(
            {"agent_version": asked}
        )
        try:
            version = self.mistral.call("agents.get", "GET", path, retry=Retry.IDEMPOTENT).json()
            version = version.get("version") if isinstance(version, dict) else None
        except (GatewayError, ValueError, RecursionError):
            version = None
        if isinstance(version, int) and not isinstance(version, bool):
            return version
        log.warning(
            "alias %r of agent %s not resolved; storing its current version", asked, agent_id
        )
        return None

    def _history(
        self, conversation_id: str, outputs: list[dict[str, Any]], incomplete: bool
    ) -> list[dict[str, Any]]:
        """Mistral's own history of the conversation; what we saw, if it cannot be had."""
        if not incomplete:
            try:
                return read_history(self.mistral, conversation_id)
            except GatewayError as exc:
                log.warning(
                    "history of %s unavailable (%s); storing the turn as seen",
                    conversation_id,
                    type(exc).__name__,
                )
        status = "incomplete" if incomplete else "complete"
        entries = store.provisional_entries(self.turn.body.get("inputs"), outputs, status=status)
        if self.turn.operation == "conversations.restart":
            prefix = self._restart_prefix()
            if incomplete:  # Mistral may not have kept the new conversation at all
                prefix = [{**entry, "_gateway_status": status} for entry in prefix]
            entries = prefix + entries
        return entries

    def _restart_prefix(self) -> list[dict[str, Any]]:
        """A restarted conversation's history begins with its source's entries up to the
        one it restarts from, which Mistral copies into it (ids included, as the stand-in
        keeps them): when that history cannot be read, the gateway's own copy of them."""
        turn = self.turn
        with self.ctx.container.pool.connection() as conn:
            return store.entries_through(
                conn,
                self.ctx.owner,
                str(turn.conversation_id),
                str(turn.body.get("from_entry_id")),
            )

    def _finish(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.mistral.breaker is not None:
            self.ctx.access.circuit = self.mistral.breaker.current()
        if self.idempotency is not None and self.key is not None:
            # The caller gets Mistral's answer even if the record cannot be completed (the
            # database just went away): failing now would hide a turn Mistral has made.
            try:
                self.idempotency.complete(
                    self.ctx.owner, self.key, StoredResponse(status, headers, body)
                )
            except Exception:  # any refusal: the answer Mistral gave still goes out
                log.warning("idempotency record of a finished turn could not be completed")
            self.idempotency = None

    def abandon(self) -> None:
        """The turn failed before an answer: free the idempotency key and the reservation."""
        if self.idempotency is not None and self.key is not None:
            try:
                self.idempotency.release(self.ctx.owner, self.key)
            except GatewayError:
                log.warning("could not release idempotency key")
        if not self.settled and self.ctx.decision is not None:
            self.ctx.container.limiter.settle(self.ctx.decision, 0)
            self.settled = True


class _StreamWatcher:
    """Reads the relayed events to learn the conversation id, outputs and usage."""

    def __init__(self) -> None:
        self.parser = SseParser()
        self.conversation_id: str | None = None
        self.usage = Usage()
        self.done = False
        self._outputs: dict[int, dict[str, Any]] = {}

    def feed(self, chunk: bytes) -> None:
        for event in self.parser.feed(chunk):
            self._see(event.data)

    def close(self) -> None:
        for event in self.parser.close():
            self._see(event.data)

    def _see(self, data: str) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "conversation.response.started":
            self.conversation_id = payload.get("conversation_id") or self.conversation_id
        elif kind == "conversation.response.done":
            self.usage = Usage.from_json(payload.get("usage"))
            self.done = True
        elif kind == "conversation.response.error":
            self.done = False
        elif isinstance(kind, str) and kind.endswith(".delta"):
            self._delta(kind, payload)

    def _delta(self, kind: str, payload: dict[str, Any]) -> None:
        index = payload.get("output_index", 0)
        entry = self._outputs.get(index)
        if kind == "message.output.delta":
            if entry is None:
                entry = self._outputs[index] = {
                    "object": "entry",
                    "type": "message.output",
                    "id": payload.get("id"),
                    "role": "assistant",
                    "content": "",
                    "model": payload.get("model"),
                    "agent_id": payload.get("agent_id"),
                    "created_at": payload.get("created_at"),
                }
            content = payload.get("content")
            if isinstance(content, str) and isinstance(entry["content"], str):
                entry["content"] += content
            elif content is not None:
                chunks = (
                    entry["content"]
                    if isinstance(entry["content"], list)
                    else ([{"type": "text", "text": entry["content"]}] if entry["content"] else [])
                )
                chunks.append(
                    content if isinstance(content, dict) else {"type": "text", "text": str(content)}
                )
                entry["content"] = chunks
        elif kind == "function.call.delta":
            if entry is None:
                entry = self._outputs[index] = {
                    "object": "entry",
                    "type": "function.call",
                    "id": payload.get("id"),
                    "name": payload.get("name"),
                    "tool_call_id": payload.get("tool_call_id"),
                    "arguments": "",
                    "model": payload.get("model"),
                    "agent_id": payload.get("agent_id"),
                    "created_at": payload.get("created_at"),
                }
            entry["arguments"] += str(payload.get("arguments") or "")

    def entries(self) -> list[dict[str, Any]]:
        return [self._outputs[i] for i in sorted(self._outputs)]

"""The start function: the conversations write path (start, append, restart, streaming)
and the metered pass-through calls (chat, fim, embeddings, agents completions,
classifiers, OCR, audio).

Each request is parsed (`parse_turn`, `parse_passthrough`), run
(`shared.conversations.turns.run_turn`, the domain operation the batch function runs too;
`shared.passthrough.run_passthrough`) and its result mapped to a response.
"""

import flask
import functions_framework

from shared import observability
from shared.conversations.turns import Turn, TurnResult, TurnStream, build_turn, run_turn
from shared.http.health import health
from shared.http.routes import PASSTHROUGH_PATHS
from shared.http.web import Context, FunctionApp
from shared.passthrough import (
    MEDIA_OPERATIONS,
    PassResult,
    PassStream,
    Passthrough,
    build_passthrough,
    run_passthrough,
)

TURNS = ("conversations.start", "conversations.append", "conversations.restart")


def parse_turn(ctx: Context) -> Turn:
    """The request as a Turn, or 415/413/400/422 saying what is wrong."""
    body = ctx.json_body()
    return build_turn(
        ctx.container.policy,
        ctx.route.operation,
        ctx.request.path,
        body,
        ctx.raw_body,
        ctx.params.get("conversation_id"),
    )


def turn_response(ctx: Context, result: TurnResult | TurnStream) -> flask.Response:
    """A turn's result as the HTTP answer: whole, or relayed event by event."""
    if isinstance(result, TurnStream):
        # The access line is written when the last event has been sent.
        return flask.Response(
            observability.deferred_stream(ctx, result.events),
            status=200,
            content_type=result.content_type,
            headers=result.headers,
        )
    return flask.Response(
        result.body, status=result.status, content_type=result.content_type, headers=result.headers
    )


def handle_turn(ctx: Context) -> flask.Response:
    """Start, append and restart, streamed or not: parse, run, map."""
    turn = parse_turn(ctx)
    return turn_response(ctx, run_turn(ctx, turn, ctx.request.headers.get("Idempotency-Key")))


def parse_passthrough(ctx: Context) -> Passthrough:
    """The request as a Passthrough, or 415/413/400/422 saying what is wrong. A call that
    may carry media inline (`MEDIA_OPERATIONS`) may be up to MAX_MEDIA_BODY_BYTES."""
    operation = ctx.route.operation
    content_type = ctx.request.headers.get("Content-Type", "")
    media = operation in MEDIA_OPERATIONS
    if operation == "audio.transcriptions.complete":
        raw, body = ctx.bytes_body(media=media), None
    else:
        body = ctx.json_body(media=media)
        raw = ctx.raw_body
    return build_passthrough(operation, ctx.request.path, raw, content_type, body)


def passthrough_response(ctx: Context, result: PassResult | PassStream) -> flask.Response:
    """Mistral's answer as it sent it: whole, or relayed chunk by chunk."""
    if isinstance(result, PassStream):
        return flask.Response(
            observability.deferred_stream(ctx, result.events),
            status=200,
            content_type=result.content_type,
            headers=result.headers,
        )
    return flask.Response(
        result.body,
        status=result.status,
        content_type=result.content_type,
        headers=result.headers or None,
    )


def handle_passthrough(ctx: Context) -> flask.Response:
    """A metered pass-through call, streamed or not: parse, run, map."""
    call, key = parse_passthrough(ctx), ctx.request.headers.get("Idempotency-Key")
    return passthrough_response(ctx, run_passthrough(ctx, call, key))


app = FunctionApp(
    "start",
    {
        **dict.fromkeys(TURNS, handle_turn),
        **dict.fromkeys(PASSTHROUGH_PATHS, handle_passthrough),
        "gateway.health": health,
    },
    # A turn's or a pass-through call's rate-limit check also reserves tokens, once its
    # body is validated.
    self_limited=(*TURNS, *PASSTHROUGH_PATHS),
)


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)

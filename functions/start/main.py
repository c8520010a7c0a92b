"""The start function: the conversations write path (start, append, restart, streaming).

Each request is parsed (`parse_turn`), run (`shared.conversations.turns.run_turn`, the domain
operation the batch function runs too) and its result mapped to a response.
"""

import flask
import functions_framework

from shared import observability
from shared.conversations.turns import Turn, TurnResult, TurnStream, build_turn, run_turn
from shared.http.health import health
from shared.http.web import Context, FunctionApp

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


app = FunctionApp(
    "start",
    {**dict.fromkeys(TURNS, handle_turn), "gateway.health": health},
    # A turn's rate-limit check also reserves tokens, once its body is validated.
    self_limited=TURNS,
)


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)

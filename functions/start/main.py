"""The start function: the conversations write path (start, append, restart, streaming)."""

import flask
import functions_framework

from shared.health import health
from shared.turns import handle_turn
from shared.web import FunctionApp

TURNS = ("conversations.start", "conversations.append", "conversations.restart")

app = FunctionApp(
    "start",
    {**dict.fromkeys(TURNS, handle_turn), "gateway.health": health},
    # A turn's rate-limit check also reserves tokens, once its body is validated.
    self_limited=TURNS,
)


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)

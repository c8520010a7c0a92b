"""The admin function: parse, call `shared`, map the result."""

import flask
import functions_framework

from shared import routes
from shared.health import health
from shared.web import FunctionApp, not_implemented

_HANDLERS = {r.operation: not_implemented for r in routes.routes_for("admin")}
_HANDLERS["gateway.health"] = health
app = FunctionApp("admin", _HANDLERS)


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)

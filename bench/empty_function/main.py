"""An empty HTTP function: what functions-framework (gunicorn, Flask) costs per request
with nothing of the gateway in it, measured beside the start in `make bench`."""

from __future__ import annotations

import flask


def handle(request: flask.Request) -> str:
    return "ok"

"""The `gateway.openapi` route: the API document (`shared.openapi`), to anyone."""

from __future__ import annotations

import flask

from shared.http.web import Context
from shared.openapi import document_bytes

__all__ = ["serve_openapi"]


def serve_openapi(ctx: Context) -> flask.Response:
    """`GET /gateway/v1/openapi.json`: the document, to anyone (no key needed)."""
    return flask.Response(
        document_bytes(),
        status=200,
        content_type="application/json",
        # The document changes only with a deploy.
        headers={"Cache-Control": "public, max-age=300"},
    )

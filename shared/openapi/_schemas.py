"""The document's schemas of its own: the stream's framing and the error bodies here, and
the gateway's routes' shapes collected from the modules that serve them (each module's
`openapi_schemas()`, written beside its code with `shared.shapes`).

Mistral's shapes, requests and responses, are not written here: they are derived from the
SDK's models (`_mistral`), and what the gateway refuses beyond them is read from the
validation code that refuses it (`_build.body_rules`).
Response schemas never forbid unknown fields: the gateway relays fields it does
not know, so a newer Mistral field must not make a response non-conforming.
"""

from __future__ import annotations

from shared.conversations import archive_delete
from shared.errors import CODES, ERROR_CATEGORIES, WHITESPACE
from shared.http import health
from shared.reads import _shapes as _reads_shapes
from shared.shapes import INT, INT32_MAX, STRING, Json, const, nullable, obj, ref
from shared.tenancy import audit, keyadmin, tenants, usage, whoami

__all__ = [
    "INT32_MAX",
    "SCHEMAS",
    "WHITESPACE",
    "Json",
    "nullable",
    "ref",
]

# -- stream events (contract 7.3) ---------------------------------------------------------------

_SSE_FRAME = obj(
    {
        "event": {"type": "string", "description": "The event name: the payload's `type`."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": ref("ConversationEvent"),
        },
        "id": STRING,
        "retry": INT,
    },
    ("event", "data"),
    description=(
        "One server-sent event. Events are separated by a blank line; each has an `event:`"
        " line and a `data:` line holding a ConversationEvent. There is no `[DONE]` sentinel:"
        " the stream ends when the body ends."
    ),
)

# -- errors (shared/errors.py, contract 8) ------------------------------------------------------

_ERROR = obj(
    {
        "object": const("error"),
        "type": {
            "type": "string",
            "enum": list(ERROR_CATEGORIES),
            "description": "Mistral's category of the error.",
        },
        "code": {
            "type": "string",
            "enum": [c for c, (status, _) in CODES.items() if status is not None],
            "description": "The cause, stable and machine-readable (the README lists each).",
        },
        "message": {"type": "string", "description": "What was wrong, for a person."},
        "param": {"type": ["string", "null"]},
        "request_id": {"type": "string", "description": "The X-Request-Id of the request."},
    },
    ("object", "type", "message", "param", "code"),
    description="Every error the gateway itself answers.",
)
_FIELD_ERROR = obj(
    {
        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
        "msg": STRING,
        "type": STRING,
    },
    ("loc", "msg", "type"),
)
_VALIDATION_ERROR = {
    "allOf": [
        ref("Error"),
        obj({"detail": {"type": "array", "items": ref("FieldError")}}, ("detail",)),
    ],
    "description": "422: every problem of the request, in the list form the SDK parses.",
}
_UPSTREAM_ERROR = obj(
    {
        "object": STRING,
        "message": {},
        "type": STRING,
        "param": {},
        "code": {},
        "detail": {},
    },
    description=(
        "Mistral's own 4xx answer, relayed with its status and body unchanged: usually"
        " `{object, message, type, param, code}`, or `{detail: [...]}` for a 422."
    ),
)

SCHEMAS: dict[str, Json] = {
    # Mistral's shapes are derived from the SDK (_mistral, _build); only the stream's framing
    "ServerSentEvent": _SSE_FRAME,
    # errors
    "Error": _ERROR,
    "FieldError": _FIELD_ERROR,
    "ValidationError": _VALIDATION_ERROR,
    "UpstreamError": _UPSTREAM_ERROR,
    # the gateway's own: each module's, beside its code
    **_reads_shapes.openapi_schemas(),
    **archive_delete.openapi_schemas(),
    **keyadmin.openapi_schemas(),
    **tenants.openapi_schemas(),
    **audit.openapi_schemas(),
    **usage.openapi_schemas(),
    **whoami.openapi_schemas(),
    **health.openapi_schemas(),
}

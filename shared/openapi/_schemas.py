"""The document's schemas written here: the stream's framing, the error bodies and the
gateway's own shapes.

Mistral's shapes, requests and responses, are not written here: they are derived from the
SDK's models (`_mistral`), and what the gateway refuses beyond them is read from the
validation code that refuses it (`_build.body_rules`).
Response schemas never forbid unknown fields: the gateway relays fields it does
not know, so a newer Mistral field must not make a response non-conforming.
"""

from __future__ import annotations

from typing import Any

from shared.errors import CODES, ERROR_CATEGORIES, NOT_BLANK, WHITESPACE
from shared.reads._query import BATCH_ITEM_STATUSES, CONVERSATION_STATUSES
from shared.tenancy.audit import ACTIONS
from shared.tenancy.keyadmin import LIMIT_FIELDS
from shared.tenancy.keys import KEY_PREFIX, MAX_GRACE_S, ROLES
from shared.tenancy.usage import DIMENSIONS

__all__ = [
    "INT32_MAX",
    "SCHEMAS",
    "WHITESPACE",
    "Json",
    "nullable",
    "ref",
]

Json = dict[str, Any]

INT32_MAX = 2_147_483_647


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Json) -> Json:
    """`schema` or JSON null."""
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "description", "format", "minimum"}:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: Json, required: tuple[str, ...] = (), **extra: Any) -> Json:
    schema: Json = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _const(value: str) -> Json:
    return {"type": "string", "const": value}


def _enum(*values: str) -> Json:
    return {"type": "string", "enum": list(values)}


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NUMBER = {"type": "number"}
_BOOL = {"type": "boolean"}
_TIME = {"type": "string", "format": "date-time"}
_ANY_OBJECT = {"type": "object"}

# -- stream events (contract 7.3) ---------------------------------------------------------------

_SSE_FRAME = _obj(
    {
        "event": {"type": "string", "description": "The event name: the payload's `type`."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": ref("ConversationEvent"),
        },
        "id": _STRING,
        "retry": _INT,
    },
    ("event", "data"),
    description=(
        "One server-sent event. Events are separated by a blank line; each has an `event:`"
        " line and a `data:` line holding a ConversationEvent. There is no `[DONE]` sentinel:"
        " the stream ends when the body ends."
    ),
)

# -- errors (shared/errors.py, contract 8) ------------------------------------------------------

_ERROR = _obj(
    {
        "object": _const("error"),
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
_FIELD_ERROR = _obj(
    {
        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
        "msg": _STRING,
        "type": _STRING,
    },
    ("loc", "msg", "type"),
)
_VALIDATION_ERROR = {
    "allOf": [
        ref("Error"),
        _obj({"detail": {"type": "array", "items": ref("FieldError")}}, ("detail",)),
    ],
    "description": "422: every problem of the request, in the list form the SDK parses.",
}
_UPSTREAM_ERROR = _obj(
    {
        "object": _STRING,
        "message": {},
        "type": _STRING,
        "param": {},
        "code": {},
        "detail": {},
    },
    description=(
        "Mistral's own 4xx answer, relayed with its status and body unchanged: usually"
        " `{object, message, type, param, code}`, or `{detail: [...]}` for a 422."
    ),
)

# -- the gateway's own shapes -------------------------------------------------------------------

_GATEWAY_CONVERSATION = {
    "allOf": [
        ref("Conversation"),
        _obj({"status": _enum(*CONVERSATION_STATUSES)}, ("status",)),
    ],
}


def _page(item: str, cursor: str = "next_cursor") -> Json:
    return _obj(
        {
            "object": _const("list"),
            "data": {"type": "array", "items": ref(item)},
            cursor: {
                "type": ["string", "null"],
                "description": "Pass it back as the next request's cursor; null on the last page.",
            },
        },
        ("object", "data", cursor),
    )


_STORED_ENTRY = _obj(
    {
        "object": _const("conversation.entry"),
        "seq": {"type": "integer", "minimum": 0},
        "id": _STRING,
        "type": _STRING,
        "status": _enum("complete", "incomplete", "unstorable"),
        "prompt_tokens": _INT,
        "completion_tokens": _INT,
        "created_at": _TIME,
        "entry": ref("Entry"),
    },
    ("object", "seq", "id", "type", "status", "prompt_tokens", "completion_tokens", "created_at"),
    description="A stored entry with what the gateway knows of it; `entry` is Mistral's.",
)
_BATCH = _obj(
    {
        "object": _const("batch"),
        "id": _STRING,
        "status": _enum("pending", "running", "succeeded", "failed", "rejected"),
        "item_count": _INT,
        "message_id": nullable(_STRING),
        "error": {},
        "published_at": nullable(_TIME),
        "created_at": _TIME,
        "updated_at": _TIME,
    },
    ("object", "id", "status", "item_count", "created_at", "updated_at"),
)
_BATCH_DETAIL = {
    "allOf": [
        ref("Batch"),
        _obj(
            {
                "counts": _obj(
                    {s: {"type": "integer", "minimum": 0} for s in BATCH_ITEM_STATUSES},
                    BATCH_ITEM_STATUSES,
                )
            },
            ("counts",),
        ),
    ],
}
_BATCH_ITEM = _obj(
    {
        "object": _const("batch.item"),
        "batch_id": _STRING,
        "index": {"type": "integer", "minimum": 0},
        "custom_id": nullable(_STRING),
        "status": _enum(*BATCH_ITEM_STATUSES),
        "conversation_id": nullable(_STRING),
        "result": {},
        "error": {},
        "attempts": _INT,
        "started_at": nullable(_TIME),
        "finished_at": nullable(_TIME),
    },
    ("object", "batch_id", "index", "status", "attempts"),
)
_ARCHIVED = _obj(
    {
        "object": _const("gateway.conversation"),
        "id": _STRING,
        "status": _enum(*CONVERSATION_STATUSES),
    },
    ("object", "id", "status"),
)


def _limit(minimum: int) -> Json:
    return {
        "type": ["integer", "null"],
        "minimum": minimum,
        "maximum": INT32_MAX,
        "description": "null: the deployment's default.",
    }


_KEY_NAME = {"type": "string", "pattern": NOT_BLANK, "maxLength": 200}
_ALLOW_LIST: Json = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 200},
    "maxItems": 100,
    "description": "Empty: no restriction. Agents are ids (aliases and versions are of an"
    " agent); a start, append or restart outside the list is 403.",
}
_LIMITS: Json = {name: _limit(minimum) for name, minimum in LIMIT_FIELDS.items()}
_KEY = _obj(
    {
        "object": _const("gateway.key"),
        "id": _STRING,
        "name": _STRING,
        "role": _enum(*ROLES),
        "owner_id": _STRING,
        "prefix": {"type": "string", "description": "The key's visible start, for listings."},
        **{name: nullable(_INT) for name in LIMIT_FIELDS},
        "allowed_models": _ALLOW_LIST,
        "allowed_agents": _ALLOW_LIST,
        "created_at": _TIME,
        "last_used_at": nullable(_TIME),
        "rotated_at": nullable(_TIME),
        "previous_secret_expires_at": {
            **nullable(_TIME),
            "description": "Until when the secret before the last rotation still works.",
        },
        "revoked_at": nullable(_TIME),
        "revoked": _BOOL,
    },
    (
        "object",
        "id",
        "name",
        "role",
        "owner_id",
        "prefix",
        *LIMIT_FIELDS,
        "allowed_models",
        "allowed_agents",
        "created_at",
        "last_used_at",
        "rotated_at",
        "previous_secret_expires_at",
        "revoked_at",
        "revoked",
    ),
    description="An API key's record. Neither its secret nor the secret's hash is ever shown.",
)
_KEY_WITH_SECRET = _obj(
    {
        "key": ref("Key"),
        "secret": {
            "type": "string",
            "pattern": f"^{KEY_PREFIX}[A-Za-z0-9_-]{{43}}$",
            "description": "The key itself: shown this once, stored only as a hash.",
        },
    },
    ("key", "secret"),
)
_CREATE_KEY = _obj(
    {
        "name": _KEY_NAME,
        "role": _enum(*ROLES),
        "owner_id": {
            **_KEY_NAME,
            "description": "The tenant to make the key in; default the caller's. Another"
            " tenant: operators only (an admin gets 404).",
        },
        **_LIMITS,
        "allowed_models": _ALLOW_LIST,
        "allowed_agents": _ALLOW_LIST,
    },
    ("name", "role"),
    additionalProperties=False,
    description="Unknown fields are refused (422), so a misspelt limit is not ignored.",
)
_ROTATE_KEY = _obj(
    {
        "grace_s": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_GRACE_S,
            "default": 0,
            "description": "Seconds the old secret keeps working (then it stops everywhere"
            " within the key cache's TTL).",
        }
    },
    (),
    additionalProperties=False,
)
_TENANT_ID: Json = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
_TENANT = _obj(
    {
        "object": _const("gateway.tenant"),
        "id": _STRING,
        "name": _STRING,
        "created_at": _TIME,
        "disabled": _BOOL,
        **{name: nullable(_INT) for name in LIMIT_FIELDS},
    },
    ("object", "id", "name", "created_at", "disabled", *LIMIT_FIELDS),
    description="A tenant; a null limit is the deployment's default. A key narrows its"
    " tenant's limits, never widens them.",
)
_CREATE_TENANT = _obj(
    {"id": _TENANT_ID, "name": _KEY_NAME, **_LIMITS},
    ("id", "name"),
    additionalProperties=False,
)
_UPDATE_TENANT = _obj(
    {"name": _KEY_NAME, "disabled": _BOOL, **_LIMITS},
    additionalProperties=False,
    description="Only the fields given change. A disabled tenant's keys answer 401.",
)
_AUDIT_ENTRY = _obj(
    {
        "object": _const("gateway.audit_entry"),
        "id": _STRING,
        "created_at": _TIME,
        "tenant_id": _STRING,
        "actor_key_id": nullable(_STRING),
        "actor_prefix": nullable(_STRING),
        "actor_role": nullable(_STRING),
        "action": _enum(*ACTIONS),
        "target_id": nullable(_STRING),
        "request_id": nullable(_STRING),
        "outcome": _STRING,
        "changes": {"type": "object", "description": "The changed fields; never a secret."},
    },
    (
        "object",
        "id",
        "created_at",
        "tenant_id",
        "actor_key_id",
        "actor_prefix",
        "actor_role",
        "action",
        "target_id",
        "request_id",
        "outcome",
        "changes",
    ),
    description="One administrative change. A null actor: the command line.",
)
_UPDATE_KEY = _obj(
    {"name": _KEY_NAME, **_LIMITS, "allowed_models": _ALLOW_LIST, "allowed_agents": _ALLOW_LIST},
    additionalProperties=False,
    description="Only the fields given change; unknown fields are refused (422).",
)
_COUNTS: Json = {
    name: {"type": "integer", "minimum": 0}
    for name in (
        "requests",
        "failed_requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    )
}
_USAGE_REPORT = _obj(
    {
        "object": _const("gateway.usage"),
        "owner_id": _STRING,
        "from": {"type": "string", "format": "date"},
        "to": {"type": "string", "format": "date"},
        "group_by": {"type": "array", "items": _enum(*DIMENSIONS)},
        "totals": _obj(_COUNTS, tuple(_COUNTS)),
        "data": {
            "type": "array",
            "items": _obj(
                {
                    **_COUNTS,
                    "key_id": nullable(_STRING),
                    "agent_id": nullable(_STRING),
                    "model": nullable(_STRING),
                    "day": {"type": "string", "format": "date"},
                    "hour": {"type": "string", "format": "date-time"},
                },
                tuple(_COUNTS),
            ),
        },
    },
    ("object", "owner_id", "from", "to", "group_by", "totals", "data"),
    description="Requests and tokens, summed per the dimensions of `group_by` (UTC days).",
)
_CHECK = _obj(
    {"ok": _BOOL, "latency_ms": _NUMBER, "error": _STRING},
    ("ok",),
)
_HEALTH = _obj(
    {
        "status": _enum("ok", "unavailable"),
        "function": _STRING,
        "database": ref("DependencyCheck"),
        "redis": ref("DependencyCheck"),
        "circuit": _enum("closed", "open", "half_open"),
        "rate_limit_failure_mode": _enum("fail-open", "fail-closed"),
    },
    ("status", "function", "database", "redis", "circuit", "rate_limit_failure_mode"),
)
_PRINCIPAL = _obj(
    {
        "object": _const("gateway.principal"),
        "key_id": _STRING,
        "prefix": _STRING,
        "name": _STRING,
        "owner_id": _STRING,
        "role": _STRING,
        "operations": {"type": "array", "items": _STRING},
        "allowed_models": {"type": "array", "items": _STRING},
        "allowed_agents": {"type": "array", "items": _STRING},
        "limits": _obj(
            {
                "rate_limit_requests": _INT,
                "rate_limit_window": _INT,
                "token_budget_per_minute": _INT,
                "token_budget_per_day": _INT,
            },
            (
                "rate_limit_requests",
                "rate_limit_window",
                "token_budget_per_minute",
                "token_budget_per_day",
            ),
        ),
    },
    ("object", "key_id", "prefix", "name", "owner_id", "role", "operations", "limits"),
)

SCHEMAS: dict[str, Json] = {
    # Mistral's shapes are derived from the SDK (_mistral, _build); only the stream's framing
    "ServerSentEvent": _SSE_FRAME,
    # errors
    "Error": _ERROR,
    "FieldError": _FIELD_ERROR,
    "ValidationError": _VALIDATION_ERROR,
    "UpstreamError": _UPSTREAM_ERROR,
    # the gateway's own
    "GatewayConversation": _GATEWAY_CONVERSATION,
    "GatewayConversationPage": _page("GatewayConversation"),
    "StoredEntry": _STORED_ENTRY,
    "StoredEntryPage": _page("StoredEntry"),
    "Batch": _BATCH,
    "BatchDetail": _BATCH_DETAIL,
    "BatchPage": _page("Batch"),
    "BatchItem": _BATCH_ITEM,
    "BatchItemPage": _page("BatchItem"),
    "ConversationStatus": _ARCHIVED,
    "Key": _KEY,
    "KeyWithSecret": _KEY_WITH_SECRET,
    "KeyPage": _page("Key"),
    "CreateKeyRequest": _CREATE_KEY,
    "UpdateKeyRequest": _UPDATE_KEY,
    "RotateKeyRequest": _ROTATE_KEY,
    "Tenant": _TENANT,
    "TenantPage": _page("Tenant"),
    "CreateTenantRequest": _CREATE_TENANT,
    "UpdateTenantRequest": _UPDATE_TENANT,
    "AuditEntry": _AUDIT_ENTRY,
    "AuditPage": _page("AuditEntry"),
    "Usage": _USAGE_REPORT,
    "Health": _HEALTH,
    "Principal": _PRINCIPAL,
    "DependencyCheck": _CHECK,
}

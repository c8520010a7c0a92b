"""The document's schemas: Mistral's wire shapes and the gateway's own, as small pieces.

Mistral's response shapes (records, entries, stream events, agents) are derived from the
SDK's models (`_mistral`), not written here. Mistral's request shapes still follow
shared/reference/mistral-wire-contract.md (sections 3-5) by hand, with what the gateway
checks beyond Mistral (its input policy, non-blank names): deriving them is still to do.
Response schemas never forbid unknown fields: the gateway relays fields it does
not know, so a newer Mistral field must not make a response non-conforming.
Unions Mistral may grow (entries, chunks, tools, stream events) are *open* on the
response side: a known `type` must have its shape, an unknown one passes through.
Request schemas describe what the gateway and Mistral accept; where the gateway
checks more than Mistral (its input policy, non-blank names), they say so.
"""

from __future__ import annotations

from typing import Any

from shared.errors import CODES, ERROR_CATEGORIES
from shared.reads._query import BATCH_ITEM_STATUSES, CONVERSATION_STATUSES
from shared.tenancy.audit import ACTIONS
from shared.tenancy.keyadmin import LIMIT_FIELDS
from shared.tenancy.keys import KEY_PREFIX, MAX_GRACE_S, ROLES
from shared.tenancy.usage import DIMENSIONS

__all__ = [
    "CLEAN_TEXT",
    "INT32_MAX",
    "SCHEMAS",
    "WHITESPACE",
    "Json",
    "nullable",
    "ref",
]

Json = dict[str, Any]

INT32_MAX = 2_147_483_647
# The gateway's input policy refuses C0/C1 control characters (but tab, newline and
# carriage return) in input text with 422, unless INPUT_CONTROL_CHARS says otherwise.
CLEAN_TEXT = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
# The characters Python's str.isspace() (so str.strip()) treats as white space, spelled out:
# regex `\s` differs between engines (U+001C-U+001F, U+FEFF).
WHITESPACE = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# A name the gateway keeps (agents, keys) must not be blank: some character strip() keeps.
_NOT_BLANK = f"[^{WHITESPACE}]"


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
_INPUT_TEXT = {"type": "string", "pattern": CLEAN_TEXT}
_STRINGS = {"type": "array", "items": _STRING}
_ANY_OBJECT = {"type": "object"}
_VERSION = {"anyOf": [_INT, _STRING], "description": "A version number or an alias."}

# -- content chunks (contract 4.2) --------------------------------------------------------------

_IMAGE_URL = {
    "anyOf": [
        _STRING,
        _obj({"url": _STRING, "detail": nullable(_enum("low", "auto", "high"))}, ("url",)),
    ]
}
_REFERENCE_CHUNK = _obj(
    {"type": _const("reference"), "reference_ids": {"type": "array", "items": _VERSION}},
    ("type", "reference_ids"),
)


def _chunks(text: Json) -> dict[str, Json]:
    """The chunk variants, with `text` as the schema of user text."""
    return {
        "text": _obj({"type": _const("text"), "text": text}, ("type", "text")),
        "image_url": _obj(
            {"type": _const("image_url"), "image_url": _IMAGE_URL}, ("type", "image_url")
        ),
        "document_url": _obj(
            {
                "type": _const("document_url"),
                "document_url": _STRING,
                "document_name": nullable(_STRING),
            },
            ("type", "document_url"),
        ),
        "thinking": _obj(
            {
                "type": _const("thinking"),
                "thinking": {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            _obj({"type": _const("text"), "text": text}, ("type", "text")),
                            _REFERENCE_CHUNK,
                            _obj(
                                {
                                    "type": _const("tool_reference"),
                                    "tool": _STRING,
                                    "title": _STRING,
                                },
                                ("type", "tool", "title"),
                            ),
                        ]
                    },
                },
                "signature": nullable(_STRING),
                "closed": _BOOL,
            },
            ("type", "thinking"),
        ),
        "tool_file": _obj(
            {
                "type": _const("tool_file"),
                "tool": _STRING,
                "file_id": _STRING,
                "file_name": nullable(_STRING),
                "file_type": nullable(_STRING),
            },
            ("type", "tool", "file_id"),
        ),
    }


# -- entries (contract 4.1) ---------------------------------------------------------------------

_ENTRY_COMMON: Json = {
    "object": _const("entry"),
    "id": _STRING,
    "created_at": _TIME,
    "completed_at": nullable(_TIME),
}


def _entries(text: Json, content: Json, *, typed_input: bool) -> dict[str, Json]:
    """The six entry variants. `typed_input` False lets a message.input leave out its type."""
    return {
        "message.input": _obj(
            {
                **_ENTRY_COMMON,
                "type": _const("message.input"),
                "role": _enum("user", "assistant"),
                "content": content,
                "prefix": _BOOL,
            },
            ("type", "role", "content") if typed_input else ("role", "content"),
        ),
        "message.output": _obj(
            {
                **_ENTRY_COMMON,
                "type": _const("message.output"),
                "content": content,
                "role": _const("assistant"),
                "agent_id": nullable(_STRING),
                "model": nullable(_STRING),
            },
            ("type", "content"),
        ),
        "function.call": _obj(
            {
                **_ENTRY_COMMON,
                "type": _const("function.call"),
                "tool_call_id": _STRING,
                "name": _STRING,
                "arguments": {"anyOf": [_ANY_OBJECT, _STRING]},
                "agent_id": nullable(_STRING),
                "model": nullable(_STRING),
                "confirmation_status": nullable(_STRING),
            },
            ("type", "tool_call_id", "name", "arguments"),
        ),
        "function.result": _obj(
            {
                **_ENTRY_COMMON,
                "type": _const("function.result"),
                "tool_call_id": _STRING,
                "result": text,
            },
            ("type", "tool_call_id", "result"),
        ),
        "tool.execution": _obj(
            {
                **_ENTRY_COMMON,
                "type": _const("tool.execution"),
                "name": _STRING,
                "arguments": _STRING,
                "agent_id": nullable(_STRING),
                "model": nullable(_STRING),
                "info": _ANY_OBJECT,
            },
            ("type", "name", "arguments"),
        ),
        "agent.handoff": _obj(
            {
                **_ENTRY_COMMON,
                "type": _const("agent.handoff"),
                "previous_agent_id": _STRING,
                "previous_agent_name": _STRING,
                "next_agent_id": _STRING,
                "next_agent_name": _STRING,
            },
            (
                "type",
                "previous_agent_id",
                "previous_agent_name",
                "next_agent_id",
                "next_agent_name",
            ),
        ),
    }


_INPUT_CONTENT = {
    "anyOf": [
        _INPUT_TEXT,
        {"type": "array", "items": {"oneOf": list(_chunks(_INPUT_TEXT).values())}},
    ],
    "description": "Text, or input chunks. The gateway's input policy checks the text parts.",
}
_INPUT_ENTRIES = _entries(_INPUT_TEXT, _INPUT_CONTENT, typed_input=False)
# -- tools, completion args, guardrails (contract 4.3-4.5) -------------------------------------

_TOOL_CONFIGURATION = nullable(
    _obj(
        {
            "exclude": nullable(_STRINGS),
            "include": nullable(_STRINGS),
            "requires_confirmation": nullable(_STRINGS),
        }
    )
)


def _tools() -> dict[str, Json]:
    def configured(tag: str, fields: Json | None = None, required: tuple[str, ...] = ()) -> Json:
        properties = {
            "type": _const(tag),
            **(fields or {}),
            "tool_configuration": _TOOL_CONFIGURATION,
        }
        return _obj(properties, ("type", *required))

    builtins = ("web_search", "web_search_premium", "code_interpreter", "image_generation")
    return {
        "function": _obj(
            {
                "type": _const("function"),
                "function": _obj(
                    {
                        "name": _STRING,
                        "parameters": {
                            "type": "object",
                            "description": "The function's parameters, as a JSON Schema.",
                        },
                        "description": _STRING,
                        "strict": _BOOL,
                    },
                    ("name", "parameters"),
                ),
            },
            ("type", "function"),
        ),
        **{tag: configured(tag) for tag in builtins},
        "document_library": configured(
            "document_library", {"library_ids": _STRINGS}, ("library_ids",)
        ),
        "connector": configured(
            "connector",
            {
                "connector_id": _STRING,
                "authorization": nullable(
                    _obj(
                        {"type": _enum("api-key", "oauth2-token"), "value": _STRING},
                        ("type", "value"),
                    )
                ),
            },
            ("connector_id",),
        ),
    }


_TOOLS = _tools()

_COMPLETION_ARGS = _obj(
    {
        "stop": nullable({"anyOf": [_STRING, _STRINGS]}),
        "presence_penalty": nullable(_NUMBER),
        "frequency_penalty": nullable(_NUMBER),
        "temperature": nullable(_NUMBER),
        "top_p": nullable(_NUMBER),
        "max_tokens": nullable({"type": "integer", "minimum": 0}),
        "random_seed": nullable(_INT),
        "prediction": nullable(_obj({"type": _const("content"), "content": _STRING})),
        "response_format": nullable(
            _obj(
                {
                    "type": _enum("text", "json_object", "json_schema"),
                    "json_schema": nullable(
                        _obj(
                            {
                                "name": _STRING,
                                "schema": _ANY_OBJECT,
                                "description": nullable(_STRING),
                                "strict": _BOOL,
                            },
                            ("name", "schema"),
                        )
                    ),
                }
            )
        ),
        "tool_choice": _enum("auto", "none", "any", "required"),
        "reasoning_effort": nullable(
            _enum("none", "minimal", "low", "medium", "high", "xhigh", "max")
        ),
    },
    description="Sampling and output settings (contract 4.4).",
)


def _moderation(categories: tuple[str, ...]) -> Json:
    return nullable(
        _obj(
            {
                "model_name": _STRING,
                "custom_category_thresholds": nullable(
                    _obj({c: nullable(_NUMBER) for c in categories})
                ),
                "ignore_other_categories": _BOOL,
                "action": _enum("none", "block"),
            }
        )
    )


_V1 = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)
_V2 = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous",
    "criminal",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
    "jailbreaking",
)
_GUARDRAIL = _obj(
    {
        "block_on_error": _BOOL,
        "moderation_llm_v1": _moderation(_V1),
        "moderation_llm_v2": _moderation(_V2),
    },
    description="A moderation guardrail (contract 4.5).",
)
_GUARDRAILS = {"type": "array", "items": ref("GuardrailConfig")}
_METADATA = {"type": "object", "description": "Free-form JSON the caller attaches."}

# -- conversation requests (contract 3) ---------------------------------------------------------

_INPUTS = {
    "description": "A string (one user message) or a list of entries.",
    "anyOf": [_INPUT_TEXT, {"type": "array", "items": ref("InputEntry")}],
}
_STREAM = {
    "type": "boolean",
    "description": "true: the answer is a text/event-stream of ConversationEvent frames.",
}
_HANDOFF = _enum("client", "server")
_TURN_COMMON: Json = {
    "inputs": _INPUTS,
    "stream": _STREAM,
    "completion_args": nullable(ref("CompletionArgs")),
}

_START_PROPERTIES: Json = {
    **_TURN_COMMON,
    "store": nullable(_BOOL),
    "handoff_execution": nullable(_HANDOFF),
    "instructions": nullable(_STRING),
    "tools": nullable({"type": "array", "items": ref("Tool")}),
    "guardrails": nullable(_GUARDRAILS),
    "name": nullable(_STRING),
    "description": nullable(_STRING),
    "metadata": nullable(_METADATA),
    "agent_id": nullable(_STRING),
    "agent_version": nullable(_VERSION),
    "model": nullable(_STRING),
}
_CONVERSATION_REQUEST = _obj(
    _START_PROPERTIES,
    ("inputs",),
    description=(
        "Start a conversation with a model (`model`) or an agent (`agent_id`): exactly one of"
        " the two, else 422. Fields the gateway does not know are sent to Mistral unchanged."
    ),
    oneOf=[
        {"required": ["model"], "properties": {"model": _STRING, "agent_id": {"type": "null"}}},
        {"required": ["agent_id"], "properties": {"agent_id": _STRING, "model": {"type": "null"}}},
    ],
)
_APPEND_REQUEST = _obj(
    {
        "inputs": _INPUTS,
        "stream": _STREAM,
        "store": nullable(_BOOL),
        "handoff_execution": nullable(_HANDOFF),
        "completion_args": nullable(ref("CompletionArgs")),
        "tool_confirmations": nullable(
            {
                "type": "array",
                "items": _obj(
                    {"tool_call_id": _STRING, "confirmation": _enum("allow", "deny")},
                    ("tool_call_id", "confirmation"),
                ),
            }
        ),
    },
    description="Append to a conversation: `inputs`, or `tool_confirmations`, or both.",
    anyOf=[
        {"required": ["inputs"]},
        {
            "required": ["tool_confirmations"],
            "properties": {"tool_confirmations": {"type": "array", "minItems": 1}},
        },
    ],
)
_RESTART_REQUEST = _obj(
    {
        **_TURN_COMMON,
        "from_entry_id": _STRING,
        "store": nullable(_BOOL),
        "handoff_execution": nullable(_HANDOFF),
        "guardrails": nullable(_GUARDRAILS),
        "metadata": nullable(_METADATA),
        "agent_version": nullable(_VERSION),
    },
    ("from_entry_id",),
    description="Branch a new conversation from one entry of this one.",
)

# -- conversation responses (contract 6) --------------------------------------------------------


# Mistral's responses (ConversationResponse, Conversation, history, messages, agents, usage)
# are derived from the SDK's models: see _mistral.

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

# -- agents (contract 5, 6.5, 6.6) --------------------------------------------------------------

_AGENT_FIELDS: Json = {
    "instructions": nullable(_STRING),
    "tools": {"type": "array", "items": ref("Tool")},
    "completion_args": ref("CompletionArgs"),
    "guardrails": nullable(_GUARDRAILS),
    "description": nullable(_STRING),
    "handoffs": nullable(_STRINGS),
    "metadata": nullable(_METADATA),
    "version_message": nullable(_STRING),
}
_NAME = {"type": "string", "pattern": _NOT_BLANK, "description": "Not blank."}
_CREATE_AGENT = _obj(
    {"model": _NAME, "name": _NAME, **_AGENT_FIELDS},
    ("model", "name"),
    description="A new agent. The gateway checks `model` and `name`; Mistral the rest.",
)
_UPDATE_AGENT = _obj(
    {
        "model": nullable(_NAME),
        "name": nullable(_NAME),
        "deployment_chat": nullable(_BOOL),
        **_AGENT_FIELDS,
    },
    description="Only the fields given change; Mistral makes a new version of the agent.",
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


_KEY_NAME = {"type": "string", "pattern": _NOT_BLANK, "maxLength": 200}
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
                    "operation": nullable(_STRING),
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
    # Mistral: requests
    "ConversationRequest": _CONVERSATION_REQUEST,
    "ConversationAppendRequest": _APPEND_REQUEST,
    "ConversationRestartRequest": _RESTART_REQUEST,
    "InputEntry": {
        "description": "An entry sent in `inputs` (a bare {role, content} is a message.input).",
        "oneOf": list(_INPUT_ENTRIES.values()),
    },
    "Tool": {"oneOf": list(_TOOLS.values()), "description": "A tool (contract 4.3)."},
    "CompletionArgs": _COMPLETION_ARGS,
    "GuardrailConfig": _GUARDRAIL,
    "CreateAgentRequest": _CREATE_AGENT,
    "UpdateAgentRequest": _UPDATE_AGENT,
    # Mistral: responses (more in _mistral, derived from the SDK)
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

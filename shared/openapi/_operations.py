"""What the document says about each operation, keyed by the route table's operation id.

Only what the route table and the permission table cannot say lives here: a
summary, the query and header parameters, the request body, the success
responses and the errors particular to the operation. A Mistral route needs no
entry (`_build` derives it from the SDK's operation); one that has an entry here
says what the gateway does beyond Mistral (answered from its database, links,
conflicts), never the body, which is always the SDK's request model. Methods, paths, path
parameters, security, roles and the errors every operation of a kind shares
(401/403/429 for authenticated ones, 404 for paths with ids, 400/413/415/422
for bodies) are derived by `_build` from `shared.http.routes` and `shared.tenancy.auth`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import WHITESPACE
from shared.openapi._schemas import Json, ref
from shared.reads import MAX_PAGE_SIZE
from shared.reads._query import BATCH_ITEM_STATUSES, CONVERSATION_STATUSES
from shared.tenancy.audit import ACTIONS
from shared.tenancy.usage import DIMENSIONS

__all__ = ["MISTRAL_PAGE_MAX", "OPERATIONS", "Operation", "Success"]

# shared.reads._query._MAX_PAGE: the largest page number of the SDK's conversation list.
MISTRAL_PAGE_MAX = 1_000_000
KEY_PAGE_MAX = 1000


@dataclass(frozen=True)
class Success:
    """One success status: its description and JSON schema (None: no body)."""

    description: str
    schema: Json | None = None
    # The answer is an event stream when the request body says `"stream": true`.
    stream: bool = False
    headers: tuple[str, ...] = ()
    # The media types the body may come as (the console's files are not JSON).
    media_types: tuple[str, ...] = ("application/json",)
    # With `stream`: the schema of one event (default: a ServerSentEvent of the conversation).
    events: Json | None = None


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    responses: Mapping[str, Success]
    description: str = ""
    query: tuple[Json, ...] = ()
    headers: tuple[Json, ...] = ()
    body: Json | None = None
    # Calls Mistral: its 4xx come back verbatim, its failures as 502/503/504.
    upstream: bool = False
    # Error statuses beyond the ones derived from the route (see the module docstring).
    errors: frozenset[int] = frozenset()
    # False: only `responses` (an internal route whose answers are its own).
    derived_errors: bool = True
    # False: the body may be left out (`gateway.keys.rotate`: no grace window).
    body_required: bool = True
    # The body's schema per media type, when it is not only `application/json`. A Mistral
    # route's body is never written here: `_build` derives it from the SDK's request models.
    body_content: Mapping[str, Json] | None = None
    links: Mapping[str, Json] = field(default_factory=dict)


# -- parameters ---------------------------------------------------------------------------------


def _query(name: str, schema: Json, description: str = "", *, required: bool = False) -> Json:
    parameter: Json = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _or_empty(schema: Json) -> Json:
    """`schema`, or the empty string: the read routes take `?status=` as the parameter left
    out, as form-style clients send it. (Spelled in the schema, not with the deprecated
    `allowEmptyValue`, so that tools which ignore that keyword still read it right.)"""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


def _int(minimum: int, maximum: int | None = None, default: int | None = None) -> Json:
    schema: Json = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return schema


# The read routes take printable text of at most 256 characters. JSON Schema cannot say
# "printable"; the pattern is its ASCII part, so a value the document allows is accepted.
_PRINTABLE: Json = {"type": "string", "maxLength": 256, "pattern": "^[ -~]*$"}
_TOKEN: Json = {"type": "string", "maxLength": 1024, "pattern": "^[A-Za-z0-9_-]*$"}
_MOMENT: Json = {"type": "string", "format": "date-time"}
_DAY: Json = {"type": "string", "format": "date"}
_CURSOR = _query(
    "cursor",
    _TOKEN,
    "The `next_cursor` of the previous page, unchanged; any other token is 422.",
)


def _limit(default: int = 100, maximum: int = MAX_PAGE_SIZE) -> Json:
    return _query("limit", _or_empty(_int(1, maximum, default)), "Page size.")


# A JSON object of a few short scalars: within every bound the gateway puts on the filter
# (at most 4096 characters, 16 levels deep, no NUL, finite numbers), which JSON Schema
# cannot all say.
_METADATA_FILTER: Json = {
    "type": "object",
    "maxProperties": 4,
    "propertyNames": {"maxLength": 32, "pattern": "^[^\\u0000]*$"},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": 64, "pattern": "^[^\\u0000]*$"},
            {"type": "integer", "minimum": -(2**53), "maximum": 2**53},
            {"type": "boolean"},
            {"type": "null"},
        ]
    },
}
_LENIENT_METADATA = _query(
    "metadata",
    {"type": "string"},
    "A JSON object: only records whose metadata contains it. Anything that is not a JSON"
    " object means no filter (the SDK sends a sentinel string when the caller gives none).",
)
_STRICT_METADATA: Json = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "description": "A JSON object: only conversations whose metadata contains it (else 422).",
    "content": {"application/json": {"schema": _METADATA_FILTER}},
}
# `group_by` as shared.tenancy.usage splits it: comma-separated names, blanks around them ignored.
_WS = f"[{WHITESPACE}]*"
_DIMENSION = f"{_WS}({'|'.join(DIMENSIONS)})?{_WS}"
_GROUP_BY = f"^{_DIMENSION}(,{_DIMENSION})*$"
_PAGE_TOKEN = _query(
    "page_token",
    _TOKEN,
    "The `next_page_token` of the previous page, unchanged; any other token is 400"
    " `invalid_page_token`, as Mistral answers it.",
)
_AGENT_FILTERS: tuple[Json, ...] = (
    # Any page size is served, as Mistral serves it (shared.reads.MISTRAL_PAGE_SIZE_CLAMP).
    _query("page_size", _int(1, default=20)),
    _query("deployment_chat", {"type": "boolean"}),
    _query(
        "sources",
        {
            "type": "array",
            "items": {"type": "string", "enum": ["api", "playground", "agent_builder_v1"]},
        },
        "Repeated: `sources=api&sources=playground`.",
    ),
    _query("name", {"type": "string"}, "Exactly this name."),
    _query("search", {"type": "string"}, "Part of the name, description or id (any case)."),
    _query("id", {"type": "string"}),
    _LENIENT_METADATA,
)
IDEMPOTENCY_KEY: Json = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "A retried request with the same key and body gets the first answer again (with"
        " `Idempotent-Replayed: true`) instead of a second call to Mistral. The same key with"
        " another body is 422; while the first request runs, 409."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}

# -- bodies and responses -----------------------------------------------------------------------


def _array(item: str) -> Json:
    return {"type": "array", "items": ref(item)}


_TURN = Success(
    'Mistral\'s answer: JSON, or with `"stream": true` an event stream.',
    ref("ConversationResponse"),
    stream=True,
    headers=("Gateway-Stored", "Idempotent-Replayed"),
)
_DELETED = Success("Deleted. No body (the SDK accepts a delete only as exactly 204).")
_CONVERSATION_LINKS: Mapping[str, Json] = {
    name: {
        "operationId": operation,
        "parameters": {"conversation_id": "$response.body#/conversation_id"},
    }
    for name, operation in (
        ("Append", "conversations.append"),
        ("Get", "conversations.get"),
        ("History", "conversations.history"),
        ("Messages", "conversations.messages"),
        ("Entries", "gateway.conversations.entries"),
        ("Archive", "gateway.conversations.archive"),
        ("Delete", "conversations.delete"),
    )
}
_AGENT_LINKS: Mapping[str, Json] = {
    name: {"operationId": operation, "parameters": {"agent_id": "$response.body#/id"}}
    for name, operation in (
        ("Get", "agents.get"),
        ("Update", "agents.update"),
        ("ListVersions", "agents.list_versions"),
        ("ListAliases", "agents.list_aliases"),
        ("Delete", "agents.delete"),
    )
}
_KEY_LINKS: Mapping[str, Json] = {
    name: {"operationId": operation, "parameters": {"key_id": "$response.body#/key/id"}}
    for name, operation in (
        ("Update", "gateway.keys.update"),
        ("Revoke", "gateway.keys.revoke"),
        ("Rotate", "gateway.keys.rotate"),
    )
}

_CONVERSATIONS = "Conversations"
_AGENTS = "Agents"
_STORED = "Stored conversations"
_BATCHES = "Batches"
_KEYS = "Keys"
_USAGE = "Usage"
_TENANTS = "Tenants"
_AUDIT = "Audit"
_SERVICE = "Service"
_TURN_DESCRIPTION = (
    "The body is forwarded to Mistral as sent (fields the gateway does not know included) and"
    " Mistral's answer relayed as it came. The turn is stored; `Gateway-Stored: false` says"
    " the database refused after Mistral answered. Input text passes the gateway's input"
    " policy: control characters (but tab, newline, carriage return) and blocked patterns are"
    " 422."
)

OPERATIONS: Mapping[str, Operation] = {
    # -- start ------------------------------------------------------------------------------
    "conversations.start": Operation(
        "Start a conversation",
        _CONVERSATIONS,
        {"200": _TURN},
        description=_TURN_DESCRIPTION,
        headers=(IDEMPOTENCY_KEY,),
        upstream=True,
        # 404: an `agent_id` that is not one of the caller's agents; 409: Idempotency-Key.
        errors=frozenset({404, 409}),
        links=_CONVERSATION_LINKS,
    ),
    "conversations.append": Operation(
        "Append to a conversation",
        _CONVERSATIONS,
        {"200": _TURN},
        description=_TURN_DESCRIPTION,
        headers=(IDEMPOTENCY_KEY,),
        upstream=True,
        errors=frozenset({409}),
    ),
    "conversations.restart": Operation(
        "Restart a conversation from an entry",
        _CONVERSATIONS,
        {"200": _TURN},
        description=_TURN_DESCRIPTION + " The answer names a new conversation.",
        headers=(IDEMPOTENCY_KEY,),
        upstream=True,
        errors=frozenset({409}),
        links=_CONVERSATION_LINKS,
    ),
    # -- history: Mistral's shapes ----------------------------------------------------------
    "conversations.list": Operation(
        "List conversations",
        _CONVERSATIONS,
        {"200": Success("The caller's conversations, newest first.", _array("Conversation"))},
        description="Answered from the gateway's database, by page number as the SDK pages.",
        query=(
            _query("page", _or_empty(_int(0, MISTRAL_PAGE_MAX, 0))),
            _query("page_size", _or_empty(_int(1, default=100))),
            _LENIENT_METADATA,
        ),
    ),
    "conversations.get": Operation(
        "Get a conversation",
        _CONVERSATIONS,
        {"200": Success("The conversation's record.", ref("Conversation"))},
    ),
    "conversations.history": Operation(
        "Get a conversation's history",
        _CONVERSATIONS,
        {
            "200": Success(
                "Every entry, in order, as Mistral returned it.", ref("ConversationHistory")
            )
        },
    ),
    "conversations.messages": Operation(
        "Get a conversation's messages",
        _CONVERSATIONS,
        {"200": Success("The message entries of the history.", ref("ConversationMessages"))},
    ),
    # -- history: the gateway's own ---------------------------------------------------------
    "gateway.conversations.list": Operation(
        "List stored conversations, filtered",
        _STORED,
        {"200": Success("A page, newest first.", ref("GatewayConversationPage"))},
        query=(
            _query("agent_id", _PRINTABLE),
            _query("model", _PRINTABLE),
            _query("status", {"type": "string", "enum": ["", *CONVERSATION_STATUSES]}),
            _query("created_after", _or_empty(_MOMENT), "RFC 3339, with a zone."),
            _query("created_before", _or_empty(_MOMENT), "RFC 3339, with a zone."),
            _STRICT_METADATA,
            _limit(),
            _CURSOR,
        ),
    ),
    "gateway.conversations.entries": Operation(
        "List a conversation's stored entries",
        _STORED,
        {"200": Success("A page of entries in history order, with usage.", ref("StoredEntryPage"))},
        query=(_limit(), _CURSOR),
    ),
    "gateway.batches.list": Operation(
        "List batches",
        _BATCHES,
        {"200": Success("A page, newest first.", ref("BatchPage"))},
        query=(_limit(), _CURSOR),
    ),
    "gateway.batches.get": Operation(
        "Get a batch",
        _BATCHES,
        {"200": Success("The batch, with how many items are in each status.", ref("BatchDetail"))},
    ),
    "gateway.batches.items": Operation(
        "List a batch's items",
        _BATCHES,
        {"200": Success("A page of items in index order.", ref("BatchItemPage"))},
        query=(
            _query("status", {"type": "string", "enum": ["", *BATCH_ITEM_STATUSES]}),
            _limit(),
            _CURSOR,
        ),
    ),
    "gateway.openapi": Operation(
        "This document",
        _SERVICE,
        {"200": Success("The OpenAPI 3.1 document of the whole gateway.", {"type": "object"})},
    ),
    # -- admin: conversations ---------------------------------------------------------------
    "conversations.delete": Operation(
        "Delete a conversation",
        _CONVERSATIONS,
        {"204": _DELETED},
        description="Deleted in Mistral, then with its entries from the database.",
        upstream=True,
    ),
    "gateway.conversations.archive": Operation(
        "Archive a conversation",
        _STORED,
        {"200": Success("The conversation's new status.", ref("ConversationStatus"))},
        description="Changes the status only; the entries are kept.",
    ),
    "gateway.conversations.unarchive": Operation(
        "Unarchive a conversation",
        _STORED,
        {"200": Success("The conversation's new status.", ref("ConversationStatus"))},
    ),
    # -- admin: agents ----------------------------------------------------------------------
    "agents.create": Operation(
        "Create an agent",
        _AGENTS,
        {"200": Success("The agent, as Mistral made it.", ref("Agent"))},
        description="Names may repeat, as at Mistral. 404 if `handoffs` names an agent that"
        " is not one of the caller's; 409 `agent_busy` while another create of the same name"
        " is under way.",
        upstream=True,
        errors=frozenset({404, 409}),
        links=_AGENT_LINKS,
    ),
    "agents.list": Operation(
        "List agents",
        _AGENTS,
        {"200": Success("The caller's agents, newest first, by page number.", _array("Agent"))},
        description="Answered from the gateway's database.",
        query=(_query("page", _int(0, MISTRAL_PAGE_MAX, 0)), *_AGENT_FILTERS),
    ),
    "agents.list_pages": Operation(
        "List agents, a page at a time",
        _AGENTS,
        {"200": Success("A page; `next_page_token` is null on the last.", ref("AgentListPage"))},
        description="Answered from the gateway's database.",
        query=(
            *_AGENT_FILTERS,
            _PAGE_TOKEN,
        ),
    ),
    "agents.get": Operation(
        "Get an agent",
        _AGENTS,
        {"200": Success("The agent (a given version or alias is asked of Mistral).", ref("Agent"))},
        query=(_query("agent_version", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),),
        upstream=True,
    ),
    "agents.update": Operation(
        "Update an agent",
        _AGENTS,
        {"200": Success("The agent's new version.", ref("Agent"))},
        upstream=True,
        errors=frozenset({409}),
    ),
    "agents.delete": Operation(
        "Delete an agent",
        _AGENTS,
        {"204": _DELETED},
        upstream=True,
        errors=frozenset({409}),
    ),
    "agents.update_version": Operation(
        "Switch an agent's current version",
        _AGENTS,
        {"200": Success("The agent at that version.", ref("Agent"))},
        query=(_query("version", {"type": "integer", "minimum": 0}, required=True),),
        upstream=True,
        errors=frozenset({409}),
    ),
    "agents.list_versions": Operation(
        "List an agent's versions",
        _AGENTS,
        {"200": Success("The agent at each version.", _array("Agent"))},
        query=(_query("page", _int(0, default=0)), _query("page_size", _int(1, default=20))),
        upstream=True,
    ),
    "agents.get_version": Operation(
        "Get one version of an agent",
        _AGENTS,
        {"200": Success("The agent at that version.", ref("Agent"))},
        upstream=True,
    ),
    "agents.create_alias": Operation(
        "Point an alias at a version",
        _AGENTS,
        {"200": Success("The alias.", ref("AgentAliasResponse"))},
        query=(
            _query("alias", {"type": "string", "minLength": 1}, required=True),
            _query("version", {"type": "integer", "minimum": 0}, required=True),
        ),
        upstream=True,
    ),
    "agents.list_aliases": Operation(
        "List an agent's aliases",
        _AGENTS,
        {"200": Success("The aliases.", _array("AgentAliasResponse"))},
        upstream=True,
    ),
    "agents.delete_alias": Operation(
        "Delete an alias",
        _AGENTS,
        {"204": _DELETED},
        query=(_query("alias", {"type": "string", "minLength": 1}, required=True),),
        upstream=True,
    ),
    # -- admin: keys and usage --------------------------------------------------------------
    "gateway.keys.create": Operation(
        "Create an API key",
        _KEYS,
        {"200": Success("The key, and its secret: shown this once.", ref("KeyWithSecret"))},
        description="In the caller's tenant, or in `owner_id`'s (operators only: an admin"
        " naming another tenant gets 404, as for a missing one). Only an operator makes"
        " operator keys.",
        body=ref("CreateKeyRequest"),
        links=_KEY_LINKS,
        # A tenant the caller may not reach or that does not exist; an unknown agent in
        # allowed_agents.
        errors=frozenset({404}),
    ),
    "gateway.keys.list": Operation(
        "List API keys",
        _KEYS,
        {"200": Success("The tenant's keys, oldest first, revoked ones included.", ref("KeyPage"))},
        query=(
            _query("limit", _int(1, KEY_PAGE_MAX, 100)),
            _CURSOR,
            _query("owner_id", _PRINTABLE, "Another tenant (operators only: else 404)."),
        ),
        errors=frozenset({404}),
    ),
    "gateway.keys.update": Operation(
        "Change a key's name, limits or allow-lists",
        _KEYS,
        {"200": Success("The key.", ref("Key"))},
        description="New limits apply at once on the instance that answered, elsewhere soon.",
        body=ref("UpdateKeyRequest"),
    ),
    "gateway.keys.revoke": Operation(
        "Revoke a key",
        _KEYS,
        {"200": Success("The revoked key (revoking twice changes nothing).", ref("Key"))},
    ),
    "gateway.keys.rotate": Operation(
        "Give a key a new secret",
        _KEYS,
        {
            "200": Success(
                "The key and its new secret; the old one works `grace_s` seconds more.",
                ref("KeyWithSecret"),
            )
        },
        description="409 for a revoked key. The body is optional (no grace window).",
        body=ref("RotateKeyRequest"),
        body_required=False,
        errors=frozenset({409}),
    ),
    "gateway.usage": Operation(
        "Read usage",
        _USAGE,
        {"200": Success("Requests and tokens, grouped as asked.", ref("Usage"))},
        description="Another tenant's usage (`owner_id`): operators only.",
        query=(
            _query(
                "from",
                _or_empty(_DAY),
                "First UTC day (default: 30 days before `to`). At most 366 days up to `to`.",
            ),
            _query("to", _or_empty(_DAY), "Last UTC day (default: today, or `from` if later)."),
            _query(
                "group_by",
                {"type": "string", "pattern": _GROUP_BY},
                f"Comma-separated, any of {', '.join(DIMENSIONS)} (default `day`; empty: totals).",
            ),
            _query("owner_id", {"type": "string"}, "Another tenant (operators only: else 404)."),
        ),
        errors=frozenset({404}),
    ),
    # -- admin: tenants and the audit log -----------------------------------------------------
    "gateway.tenants.create": Operation(
        "Create a tenant",
        _TENANTS,
        {"200": Success("The tenant.", ref("Tenant"))},
        description="Operators only. 409 if the id is taken.",
        body=ref("CreateTenantRequest"),
        errors=frozenset({409}),
    ),
    "gateway.tenants.list": Operation(
        "List tenants",
        _TENANTS,
        {"200": Success("Every tenant, by id.", ref("TenantPage"))},
        query=(_query("limit", _int(1, KEY_PAGE_MAX, 100)), _CURSOR),
    ),
    "gateway.tenants.get": Operation(
        "Read a tenant",
        _TENANTS,
        {"200": Success("The tenant.", ref("Tenant"))},
        description="An admin reads its own tenant only (another is 404); an operator any.",
    ),
    "gateway.tenants.update": Operation(
        "Change a tenant's name, state or limits",
        _TENANTS,
        {"200": Success("The tenant.", ref("Tenant"))},
        description="Operators only. A disabled tenant's keys answer 401 within the key"
        " cache's TTL; an operator cannot disable its own tenant (409).",
        body=ref("UpdateTenantRequest"),
        errors=frozenset({409}),
    ),
    "gateway.audit.list": Operation(
        "Read the audit log",
        _AUDIT,
        {"200": Success("Administrative changes, newest first.", ref("AuditPage"))},
        description="An admin reads its own tenant's (another `tenant_id` is 404); an"
        " operator any tenant's, or every tenant's without `tenant_id`.",
        query=(
            _query("limit", _int(1, KEY_PAGE_MAX, 100)),
            _CURSOR,
            _query("tenant_id", _PRINTABLE),
            _query("actor_key_id", _PRINTABLE),
            _query("action", {"type": "string", "enum": list(ACTIONS)}),
            _query("since", _or_empty(_MOMENT), "Entries at or after this time."),
            _query("until", _or_empty(_MOMENT), "Entries before this time."),
        ),
        errors=frozenset({404}),
    ),
    "gateway.whoami": Operation(
        "Who the caller is",
        _KEYS,
        {
            "200": Success(
                "The caller's key, tenant, role, operations and limits.", ref("Principal")
            )
        },
        description="The operations the caller's role may call, from the one permission table.",
    ),
    "gateway.console": Operation(
        "The web console",
        _SERVICE,
        {"200": Success("The console's page.", {"type": "string"}, media_types=("text/html",))},
        description=(
            "A static page, open to all: it holds no data. Signed in with a gateway key (kept"
            " in the browser session only), it reads everything from the keyed routes."
        ),
    ),
    "gateway.console.asset": Operation(
        "A file of the web console",
        _SERVICE,
        {
            "200": Success(
                "A script, style sheet or image of the console.",
                {"type": "string"},
                media_types=("text/javascript", "text/css", "image/svg+xml"),
            )
        },
    ),
    # -- every function ---------------------------------------------------------------------
    "gateway.health": Operation(
        "Check a function's dependencies",
        _SERVICE,
        {
            "200": Success("PostgreSQL and Redis answer.", ref("Health")),
            "503": Success(
                "One of them does not: it is named.", ref("Health"), headers=("Retry-After",)
            ),
        },
    ),
}

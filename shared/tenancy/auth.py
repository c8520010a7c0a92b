"""Who may do what: the one permission table, checked in one place.

Every route's operation needs one permission; every role holds a set of them.
`authenticate` turns the Authorization header into a `Principal` (401 when it
cannot) and `authorize` checks the role (403 when it may not). Ownership is
not decided here: every query is scoped to `principal.owner_id`, and another
tenant's object answers 404 exactly as a missing one does.

Roles (README "Roles"): `operator` runs the deployment: tenants, keys, usage and
the audit log of every tenant (the one permission that crosses tenants,
`tenants:any`), and nothing of conversations or agents. `admin` is everything
inside its own tenant; `user` and `read_only` as before. `tenant_scope` is where
a tenant named in a request (`owner_id`, `tenant_id`) is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import Forbidden, NotFound, OutsideAllowList
from shared.tenancy.keys import KeyCache, Principal, parse_bearer

__all__ = [
    "CROSS_TENANT",
    "OPERATION_PERMISSIONS",
    "PUBLIC_OPERATIONS",
    "ROLE_PERMISSIONS",
    "authenticate",
    "authorize",
    "check_allow_lists",
    "crosses_tenants",
    "may",
    "tenant_scope",
]

# Operations anyone may call: liveness for load balancers, the API document, and the
# console's static shell (it holds no data: every figure it shows comes from a keyed route).
PUBLIC_OPERATIONS = frozenset(
    {"gateway.health", "gateway.openapi", "gateway.console", "gateway.console.asset"}
)

OPERATION_PERMISSIONS: Mapping[str, str] = {
    # conversations: reading
    "conversations.list": "conversations:read",
    "conversations.get": "conversations:read",
    "conversations.history": "conversations:read",
    "conversations.messages": "conversations:read",
    "gateway.conversations.list": "conversations:read",
    "gateway.conversations.entries": "conversations:read",
    "gateway.batches.list": "conversations:read",
    "gateway.batches.get": "conversations:read",
    "gateway.batches.items": "conversations:read",
    # conversations: writing
    "conversations.start": "conversations:write",
    "conversations.append": "conversations:write",
    "conversations.restart": "conversations:write",
    "gateway.conversations.archive": "conversations:archive",
    "gateway.conversations.unarchive": "conversations:archive",
    "conversations.delete": "conversations:delete",
    # agents
    "agents.list": "agents:read",
    "agents.list_pages": "agents:read",
    "agents.get": "agents:read",
    "agents.list_versions": "agents:read",
    "agents.get_version": "agents:read",
    "agents.list_aliases": "agents:read",
    "agents.create": "agents:manage",
    "agents.update": "agents:manage",
    "agents.delete": "agents:manage",
    "agents.update_version": "agents:manage",
    "agents.create_alias": "agents:manage",
    "agents.delete_alias": "agents:manage",
    # keys and usage
    "gateway.keys.create": "keys:manage",
    "gateway.keys.list": "keys:manage",
    "gateway.keys.update": "keys:manage",
    "gateway.keys.revoke": "keys:manage",
    "gateway.keys.rotate": "keys:manage",
    "gateway.usage": "usage:read",
    # tenants and the audit log
    "gateway.tenants.create": "tenants:manage",
    "gateway.tenants.list": "tenants:manage",
    "gateway.tenants.get": "tenants:read",
    "gateway.tenants.update": "tenants:manage",
    "gateway.audit.list": "audit:read",
    # who the caller is and what its role may call (the console and CLI ask it first)
    "gateway.whoami": "self:read",
    # batches arrive from Pub/Sub with the owner in the message, not from a key
    "gateway.batches.deliver": "batches:deliver",
    # the batch job sweep comes from Cloud Scheduler (Cloud Run IAM), never from a key
    "gateway.batch_jobs.sweep": "batch_jobs:sweep",
    # shared read-only: the models list, filtered by the key's allowed_models
    "models.list": "models:read",
    "models.retrieve": "models:read",
    # tenant-owned Mistral resources: files
    "files.list": "files:read",
    "files.retrieve": "files:read",
    "files.download": "files:read",
    "files.get_signed_url": "files:read",
    "files.upload": "files:write",
    "files.delete": "files:write",
    # libraries, their documents and who they are shared with
    "libraries.list": "libraries:read",
    "libraries.get": "libraries:read",
    "libraries.documents.list": "libraries:read",
    "libraries.documents.get": "libraries:read",
    "libraries.documents.status": "libraries:read",
    "libraries.documents.text_content": "libraries:read",
    "libraries.documents.get_signed_url": "libraries:read",
    "libraries.documents.extracted_text_signed_url": "libraries:read",
    "libraries.accesses.list": "libraries:read",
    "libraries.create": "libraries:write",
    "libraries.update": "libraries:write",
    "libraries.replace": "libraries:write",
    "libraries.delete": "libraries:write",
    "libraries.documents.upload": "libraries:write",
    "libraries.documents.update": "libraries:write",
    "libraries.documents.replace": "libraries:write",
    "libraries.documents.delete": "libraries:write",
    "libraries.documents.reprocess": "libraries:write",
    "libraries.accesses.update_or_create": "libraries:share",
    "libraries.accesses.delete": "libraries:share",
    # Mistral batch jobs
    "batch.jobs.list": "batch_jobs:read",
    "batch.jobs.get": "batch_jobs:read",
    "batch.jobs.create": "batch_jobs:write",
    "batch.jobs.cancel": "batch_jobs:write",
    "batch.jobs.delete": "batch_jobs:write",
    # metered pass-through (docs/sdk-surface.md): calls that spend tokens
    **dict.fromkeys(
        (
            "chat.complete",
            "fim.complete",
            "embeddings.create",
            "agents.complete",
            "classifiers.classify",
            "classifiers.classify_chat",
            "classifiers.moderate",
            "classifiers.moderate_chat",
            "ocr.process",
            "audio.transcriptions.complete",
            "audio.speech.complete",
        ),
        "completions:create",
    ),
}

_READ = frozenset(
    {
        "self:read",
        "conversations:read",
        "usage:read",
        "models:read",
        "files:read",
        "libraries:read",
        "batch_jobs:read",
    }
)
_USER = _READ | {
    "conversations:write",
    "conversations:archive",
    "agents:read",
    "files:write",
    "libraries:write",
    "batch_jobs:write",
    "completions:create",
}
_ADMIN = _USER | {
    "conversations:delete",
    "libraries:share",
    "agents:manage",
    "keys:manage",
    "tenants:read",
    "audit:read",
}
# The one permission that lets a request name another tenant (keys, usage, audit, tenants).
CROSS_TENANT = "tenants:any"
# No conversations:* and no agents:*: the platform team is not the tenants' data reader.
_OPERATOR = frozenset(
    {
        "self:read",
        "keys:manage",
        "usage:read",
        # to set a key's allowed_models from the models Mistral serves
        "models:read",
        "tenants:read",
        "tenants:manage",
        "audit:read",
        CROSS_TENANT,
    }
)

ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "operator": _OPERATOR,
    "admin": frozenset(_ADMIN),
    "user": frozenset(_USER),
    "read_only": _READ,
}


def may(role: str, operation: str) -> bool:
    """True if the role holds the permission the operation needs."""
    needed = OPERATION_PERMISSIONS.get(operation)
    return needed is not None and needed in ROLE_PERMISSIONS.get(role, frozenset())


def authenticate(header: str | None, keys: KeyCache) -> Principal:
    return keys.resolve(parse_bearer(header))


def authorize(principal: Principal, operation: str) -> None:
    if not may(principal.role, operation):
        raise Forbidden(f"the {principal.role} role may not call {operation}")


def crosses_tenants(role: str) -> bool:
    """True if the role may act on tenants other than its own key's."""
    return CROSS_TENANT in ROLE_PERMISSIONS.get(role, frozenset())


def tenant_scope(principal: Principal, named: str | None) -> str:
    """The tenant a request acts on: the one it names, if the caller may act there.

    A tenant the caller may not reach answers 404 exactly as a missing one does
    (never 403, which would confirm it exists); whether a named tenant exists is
    the caller's next check.
    """
    if not named or named == principal.owner_id:
        return principal.owner_id
    if crosses_tenants(principal.role):
        return named
    raise NotFound("tenant not found")


def check_allow_lists(principal: Principal, agent_id: str | None, model: str | None) -> None:
    """403 naming the key's list when the call's agent or model is outside it (an empty
    list allows everything). An agent's versions and aliases are that agent: the list
    holds agent ids, and `agent_version` never changes which agent answers."""
    if agent_id and principal.allowed_agents and agent_id not in principal.allowed_agents:
        raise OutsideAllowList(
            "allowed_agents", "this API key may not use this agent (see the key's allowed_agents)"
        )
    if model and principal.allowed_models and model not in principal.allowed_models:
        raise OutsideAllowList(
            "allowed_models", "this API key may not use this model (see the key's allowed_models)"
        )

"""Who may do what: the one permission table, checked in one place.

Every route's operation needs one permission; every role holds a set of them.
`authenticate` turns the Authorization header into a `Principal` (401 when it
cannot) and `authorize` checks the role (403 when it may not). Ownership is
not decided here: every query is scoped to `principal.owner_id`, and another
tenant's object answers 404 exactly as a missing one does.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import Forbidden
from shared.keys import KeyCache, Principal, parse_bearer

__all__ = [
    "OPERATION_PERMISSIONS",
    "PUBLIC_OPERATIONS",
    "ROLE_PERMISSIONS",
    "authenticate",
    "authorize",
    "may",
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
    # who the caller is and what its role may call (the console and CLI ask it first)
    "gateway.whoami": "self:read",
    # batches arrive from Pub/Sub with the owner in the message, not from a key
    "gateway.batches.deliver": "batches:deliver",
}

_READ = frozenset({"self:read", "conversations:read", "usage:read"})
_USER = _READ | {"conversations:write", "conversations:archive", "agents:read"}
_ADMIN = _USER | {
    "conversations:delete",
    "agents:manage",
    "keys:manage",
    # An admin may read another tenant's usage (the operator's view); nothing else
    # crosses tenants.
    "usage:read_any",
}

ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
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

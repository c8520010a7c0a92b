"""The permission table: every route's operation, for every role, written out by hand."""

from __future__ import annotations

import pytest

from shared.errors import Forbidden
from shared.http import routes
from shared.tenancy.auth import (
    OPERATION_PERMISSIONS,
    PUBLIC_OPERATIONS,
    ROLE_PERMISSIONS,
    authorize,
    may,
)
from shared.tenancy.keys import ROLES, Principal

ALL = frozenset({"admin", "user", "read_only"})
WRITERS = frozenset({"admin", "user"})
ADMIN = frozenset({"admin"})
OPERATOR = frozenset({"operator"})
ADMINS = frozenset({"operator", "admin"})
EVERYONE = ALL | OPERATOR
NOBODY: frozenset[str] = frozenset()

# Who may call what, as README ("API keys, roles and tenants") and DESIGN section 3 say: admin
# everything in its tenant; user starts, continues, reads and archives conversations and
# reads agents; read_only reads conversations and usage; operator (issue 15) keys, usage,
# tenants and the audit log of any tenant, never conversations or agents. Written out,
# not derived from shared.tenancy.auth, so a change there has to be a change here too.
EXPECTED: dict[str, frozenset[str]] = {
    # history: reading conversations and batches
    "conversations.list": ALL,
    "conversations.get": ALL,
    "conversations.history": ALL,
    "conversations.messages": ALL,
    "gateway.conversations.list": ALL,
    "gateway.conversations.entries": ALL,
    "gateway.batches.list": ALL,
    "gateway.batches.get": ALL,
    "gateway.batches.items": ALL,
    # start: writing conversations
    "conversations.start": WRITERS,
    "conversations.append": WRITERS,
    "conversations.restart": WRITERS,
    # admin: conversation lifecycle
    "gateway.conversations.archive": WRITERS,
    "gateway.conversations.unarchive": WRITERS,
    "conversations.delete": ADMIN,
    # admin: agents (only admin manages them; user reads them)
    "agents.list": WRITERS,
    "agents.list_pages": WRITERS,
    "agents.get": WRITERS,
    "agents.list_versions": WRITERS,
    "agents.get_version": WRITERS,
    "agents.list_aliases": WRITERS,
    "agents.create": ADMIN,
    "agents.update": ADMIN,
    "agents.delete": ADMIN,
    "agents.update_version": ADMIN,
    "agents.create_alias": ADMIN,
    "agents.delete_alias": ADMIN,
    # admin: keys and usage
    "gateway.keys.create": ADMINS,
    "gateway.keys.list": ADMINS,
    "gateway.keys.update": ADMINS,
    "gateway.keys.revoke": ADMINS,
    "gateway.keys.rotate": ADMINS,
    "gateway.usage": EVERYONE,
    # admin: tenants (an operator's) and the audit log
    "gateway.tenants.create": OPERATOR,
    "gateway.tenants.list": OPERATOR,
    "gateway.tenants.get": ADMINS,
    "gateway.tenants.update": OPERATOR,
    "gateway.audit.list": ADMINS,
    # the caller itself: who it is and what it may call
    "gateway.whoami": EVERYONE,
    # admin: Mistral's models, shared read-only (an operator sets keys' allowed_models)
    "models.list": EVERYONE,
    "models.retrieve": EVERYONE,
    # batch: delivered by Pub/Sub (Cloud Run IAM), never by a gateway key
    "gateway.batches.deliver": NOBODY,
    # batch: the batch job sweep, run by Cloud Scheduler (Cloud Run IAM), never by a key
    "gateway.batch_jobs.sweep": NOBODY,
    # tenant-owned Mistral resources: everyone reads the tenant's own, writers change them,
    # only admin changes a library's sharing in Mistral (issue 19)
    **dict.fromkeys(
        (
            "files.list",
            "files.retrieve",
            "files.download",
            "files.get_signed_url",
            "libraries.list",
            "libraries.get",
            "libraries.documents.list",
            "libraries.documents.get",
            "libraries.documents.status",
            "libraries.documents.text_content",
            "libraries.documents.get_signed_url",
            "libraries.documents.extracted_text_signed_url",
            "libraries.accesses.list",
            "batch.jobs.list",
            "batch.jobs.get",
        ),
        ALL,
    ),
    **dict.fromkeys(
        (
            "files.upload",
            "files.delete",
            "libraries.create",
            "libraries.update",
            "libraries.replace",
            "libraries.delete",
            "libraries.documents.upload",
            "libraries.documents.update",
            "libraries.documents.replace",
            "libraries.documents.delete",
            "libraries.documents.reprocess",
            "batch.jobs.create",
            "batch.jobs.cancel",
            "batch.jobs.delete",
        ),
        WRITERS,
    ),
    "libraries.accesses.update_or_create": ADMIN,
    "libraries.accesses.delete": ADMIN,
    # start: metered pass-through, spending tokens as turns do
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
        WRITERS,
    ),
}

GUARDED = sorted({r.operation for r in routes.ROUTES} - PUBLIC_OPERATIONS)


def test_every_guarded_route_has_a_permission() -> None:
    """Each non-public route's operation needs a permission; none is stale or missing."""
    assert set(GUARDED) == set(OPERATION_PERMISSIONS)


def test_this_table_covers_every_guarded_route() -> None:
    """A route added without a row in this test's table fails here."""
    assert set(GUARDED) == set(EXPECTED)


def test_the_roles_are_the_four_of_the_design() -> None:
    """Keys are issued with operator, admin, user or read_only and nothing else."""
    assert set(ROLES) == EVERYONE


def test_an_operator_holds_no_conversation_or_agent_permission() -> None:
    """The platform team is not the tenants' data reader: no conversations:*, no agents:*."""
    held = ROLE_PERMISSIONS["operator"]
    assert not {p for p in held if p.startswith(("conversations:", "agents:"))}


@pytest.mark.parametrize("role", sorted(EVERYONE))
@pytest.mark.parametrize("operation", GUARDED)
def test_role_may_call_exactly_its_operations(role: str, operation: str) -> None:
    """`may` allows the role exactly where the table above does."""
    assert may(role, operation) is (role in EXPECTED[operation])


@pytest.mark.parametrize("operation", GUARDED)
def test_unknown_roles_may_call_nothing(operation: str) -> None:
    """A role that is not one of the three (a bad row, a typo) is refused everything."""
    assert not may("superuser", operation)
    assert not may("", operation)


@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_unknown_operations_are_refused(role: str) -> None:
    """An operation missing from the table is refused, not allowed by default."""
    assert not may(role, "agents.teleport")


def test_authorize_raises_403_for_a_refused_role_and_nothing_otherwise() -> None:
    """`authorize` is the check the pipeline runs: Forbidden (403) naming role and action."""
    reader = Principal(key_id="k", owner_id="t", name="n", role="read_only", prefix="mgw_x")
    authorize(reader, "conversations.list")
    with pytest.raises(Forbidden) as refused:
        authorize(reader, "agents.create")
    assert refused.value.status == 403
    assert "read_only" in refused.value.message
    assert "agents.create" in refused.value.message

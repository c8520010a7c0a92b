"""Every query of the history function is served by an index on a database of realistic size.

A separate database is seeded with 40,000 conversations, 320,000 entries, 4,000
batches and 80,000 batch items across four tenants, then analysed, so the
planner's choices are the ones production would see. Each read runs against it
through a connection that records its statements; each recorded statement,
with its exact parameters, is then EXPLAINed, and no plan may scan a read
table sequentially.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.servers import EmbeddedPostgres
from shared import cursors, reads
from shared.config import Settings
from shared.db import Conn, Pool, connector_for
from shared.db.schema import migrate

TENANT = "tenant-1"
# Conversation g belongs to tenant g % 4: these are the tenant's.
CONVERSATION = "conv_00000001"
BATCH = "batch_0001"
READ_TABLES = {"conversations", "conversation_entries", "batches", "batch_items"}
# Both start with conversation_id; for a handful of rows the planner may take the unique
# (conversation_id, id) index and sort, instead of walking the primary key in seq order.
ENTRY_INDEXES = {"conversation_entries_pkey", "conversation_entries_conversation_id_id_key"}

_SEED = [
    """
    INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)
    SELECT 'ag_' || g, 'tenant-' || (g % 4), 'agent ' || g, 'mistral-small-latest', '{}',
           now(), now()
    FROM generate_series(0, 39) AS g
    """,
    """
    INSERT INTO conversations (id, owner_id, agent_id, agent_version, model, status, metadata,
                               created_at, updated_at)
    SELECT 'conv_' || lpad(g::text, 8, '0'), 'tenant-' || (g % 4),
           CASE WHEN g % 2 = 0 THEN 'ag_' || (g % 40) END,
           CASE WHEN g % 2 = 0 THEN '0' END,
           CASE WHEN g % 2 = 1 THEN 'model-' || (g % 7) END,
           CASE WHEN g % 50 = 3 THEN 'archived' WHEN g % 97 = 5 THEN 'deleted' ELSE 'active' END,
           CASE WHEN g % 3 = 0 THEN jsonb_build_object('team', 't' || (g % 40), 'n', g % 7) END,
           timestamptz '2025-01-01' + g * interval '13 minutes',
           timestamptz '2025-01-01' + g * interval '13 minutes'
    FROM generate_series(0, 39999) AS g
    """,
    """
    INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type, body, created_at)
    SELECT 'conv_' || lpad(g::text, 8, '0'), s, 'msg_' || g || '_' || s, 'tenant-' || (g % 4),
           CASE WHEN s % 4 = 2 THEN 'function.call' WHEN s % 2 = 0 THEN 'message.input'
                ELSE 'message.output' END,
           jsonb_build_object('object', 'entry', 'id', 'msg_' || g || '_' || s, 'content', 'hi'),
           timestamptz '2025-01-01' + g * interval '13 minutes' + s * interval '1 second'
    FROM generate_series(0, 39999) AS g, generate_series(0, 7) AS s
    """,
    """
    INSERT INTO batches (id, owner_id, status, item_count, created_at, updated_at)
    SELECT 'batch_' || lpad(g::text, 4, '0'), 'tenant-' || (g % 4), 'succeeded', 20,
           timestamptz '2025-01-01' + g * interval '1 hour', now()
    FROM generate_series(0, 3999) AS g
    """,
    """
    INSERT INTO batch_items (batch_id, idx, owner_id, status, request, result)
    SELECT 'batch_' || lpad(g::text, 4, '0'), i, 'tenant-' || (g % 4),
           CASE WHEN i % 5 = 0 THEN 'failed' ELSE 'succeeded' END, '{}', '{"ok": true}'
    FROM generate_series(0, 3999) AS g, generate_series(0, 19) AS i
    """,
    "ANALYZE",
]


@pytest.fixture(scope="module")
def big_pool(postgres: EmbeddedPostgres) -> Iterator[Pool]:
    """A migrated, seeded and analysed database of its own."""
    url = postgres.create_database("history_indexes")
    settings = Settings(database_url=url, db_pool_timeout_ms=60_000, db_statement_timeout_ms=60_000)
    pool = Pool(connector_for(settings), size=1, timeout_s=60)
    migrate(pool)
    with pool.connection() as conn:
        conn.run("TRUNCATE conversation_entries, conversations, agents, batch_items, batches")
        for statement in _SEED:
            conn.run(statement)
    yield pool
    pool.close()


class _Recording(Conn):
    """A connection that keeps every statement it runs, with its parameters."""

    def __init__(self, raw: Any) -> None:
        super().__init__(raw)
        self.statements: list[tuple[str, dict[str, Any]]] = []

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        self.statements.append((sql, params))
        return super().run(sql, **params)


Read = Callable[[Conn], object]
_AFTER = (datetime(2025, 4, 1, tzinfo=UTC), "conv_zzz")


def _conversations(**query: Any) -> Read:
    return lambda conn: reads.conversation_page(conn, TENANT, reads.ConversationsQuery(**query))


def _mistral_list(**query: Any) -> Read:
    return lambda conn: reads.conversation_records(conn, TENANT, reads.MistralListQuery(**query))


# Each read, and the indexes its plan may use on the read tables.
CASES: dict[str, tuple[Read, set[str]]] = {
    "mistral list, first page": (_mistral_list(), {"conversations_owner_keyset"}),
    "mistral list, page 40": (_mistral_list(page=40), {"conversations_owner_keyset"}),
    "mistral list, metadata": (
        _mistral_list(metadata='{"team": "t5", "n": 2}'),
        {"conversations_owner_keyset", "conversations_metadata"},
    ),
    "gateway list": (_conversations(), {"conversations_owner_keyset"}),
    "gateway list, after a cursor": (_conversations(after=_AFTER), {"conversations_owner_keyset"}),
    "gateway list, agent": (_conversations(agent_id="ag_5"), {"conversations_owner_agent"}),
    "gateway list, model": (_conversations(model="model-3"), {"conversations_owner_model"}),
    "gateway list, archived": (_conversations(status="archived"), {"conversations_owner_archived"}),
    "gateway list, active": (_conversations(status="active"), {"conversations_owner_keyset"}),
    "gateway list, created range": (
        _conversations(
            created_after=datetime(2025, 3, 1, tzinfo=UTC),
            created_before=datetime(2025, 3, 4, tzinfo=UTC),
        ),
        {"conversations_owner_keyset"},
    ),
    "gateway list, metadata": (
        _conversations(metadata='{"team": "t9", "n": 2}'),
        {"conversations_owner_keyset", "conversations_metadata"},
    ),
    "gateway list, agent + archived + cursor": (
        _conversations(agent_id="ag_5", status="archived", after=_AFTER),
        {"conversations_owner_agent", "conversations_owner_archived"},
    ),
    "get": (
        lambda conn: reads.conversation(conn, TENANT, CONVERSATION),
        {"conversations_pkey"},
    ),
    "history": (
        lambda conn: reads.conversation_history(conn, TENANT, CONVERSATION),
        {"conversations_pkey", *ENTRY_INDEXES},
    ),
    "messages": (
        lambda conn: reads.conversation_messages(conn, TENANT, CONVERSATION),
        {"conversations_pkey", *ENTRY_INDEXES},
    ),
    "entries, after a cursor": (
        lambda conn: reads.conversation_entries(
            conn, TENANT, CONVERSATION, reads.EntriesQuery(limit=3, after=2)
        ),
        {"conversations_pkey", *ENTRY_INDEXES},
    ),
    "batches": (
        lambda conn: reads.batch_page(conn, TENANT, reads.BatchesQuery()),
        {"batches_owner_keyset"},
    ),
    "batches, after a cursor": (
        lambda conn: reads.batch_page(
            conn, TENANT, reads.BatchesQuery(after=(datetime(2025, 2, 1, tzinfo=UTC), "b"))
        ),
        {"batches_owner_keyset"},
    ),
    "batch with counts": (
        lambda conn: reads.batch(conn, TENANT, BATCH),
        {"batches_pkey", "batch_items_pkey"},
    ),
    "batch items, failed, after a cursor": (
        lambda conn: reads.batch_items(
            conn, TENANT, BATCH, reads.BatchItemsQuery(status="failed", after=4)
        ),
        {"batches_pkey", "batch_items_pkey"},
    ),
}


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str | None, str | None]]:
    """(node type, relation, index) for every node of a JSON plan."""
    yield plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name")
    for child in plan.get("Plans", []):
        yield from _scans(child)


def _explain(conn: Conn, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    ((document,),) = conn.run("EXPLAIN (FORMAT JSON) " + sql, **params)
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


@pytest.mark.parametrize("case", list(CASES))
def test_every_query_is_served_by_an_index(big_pool: Pool, case: str) -> None:
    """No statement of the read scans a read table sequentially; each uses the intended index."""
    read, allowed = CASES[case]
    with big_pool.connection() as pooled:
        conn = _Recording(pooled.raw)
        read(conn)
        assert conn.statements, "the read ran no query"
        used: set[str] = set()
        for sql, params in conn.statements:
            for node, relation, index in _scans(_explain(pooled, sql, params)):
                assert not (node == "Seq Scan" and relation in READ_TABLES), (case, sql)
                if index is not None:
                    used.add(index)
    assert used, f"{case}: no index was used"
    assert used <= allowed, f"{case}: used {used}, expected among {allowed}"


def test_the_seeded_tenant_has_what_the_cases_read(big_pool: Pool) -> None:
    """The cases read real rows: their answers are not trivially empty."""
    with big_pool.connection() as conn:
        assert len(reads.conversation_history(conn, TENANT, CONVERSATION)["entries"]) == 8
        page = reads.conversation_page(conn, TENANT, reads.ConversationsQuery(status="archived"))
        assert len(page["data"]) == 100
        assert all(record["status"] == "archived" for record in page["data"])
        token = page["next_cursor"]
        assert cursors.decode(token, "conversations", (datetime, str))[1] == page["data"][-1]["id"]
        assert reads.batch(conn, TENANT, BATCH)["counts"]["failed"] == 4

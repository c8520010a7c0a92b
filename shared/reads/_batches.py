"""Batches and their items, as the batch function recorded them.

Scoped to the caller's tenant like every read; another tenant's batch is 404.
Indexes (see tests/functional/test_history_indexes.py):

    list               batches_owner_keyset (owner_id, created_at DESC, id DESC)
    get, tenant check  batches_pkey
    counts, items      batch_items_pkey (batch_id, idx)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.db import Conn
from shared.errors import NotFound
from shared.reads import _shapes
from shared.reads._query import (
    BATCH_ITEM_STATUSES,
    BATCH_ITEMS_CURSOR,
    BATCHES_CURSOR,
    BatchesQuery,
    BatchItemsQuery,
)

__all__ = ["batch", "batch_items", "batch_page"]

_LIST = """
SELECT id, status, item_count, message_id, error, published_at, created_at, updated_at
FROM batches
WHERE owner_id = :owner
  AND (CAST(:after_created_at AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(:after_created_at AS timestamptz), CAST(:after_id AS text)))
ORDER BY created_at DESC, id DESC
LIMIT :limit
"""

_ONE = """
SELECT id, status, item_count, message_id, error, published_at, created_at, updated_at
FROM batches
WHERE id = :batch_id AND owner_id = :owner
"""

_COUNTS = """
SELECT status, count(*) AS items
FROM batch_items
WHERE batch_id = :batch_id
GROUP BY status
"""

_EXISTS = """
SELECT 1 AS found
FROM batches
WHERE id = :batch_id AND owner_id = :owner
"""

# The owner is checked on the batch first; repeated here as a second fence.
_ITEMS = """
SELECT batch_id, idx, custom_id, status, conversation_id, result, error, attempts,
       started_at, finished_at
FROM batch_items
WHERE batch_id = :batch_id AND owner_id = :owner
  AND (CAST(:status AS text) IS NULL OR status = :status)
  AND idx > :after_idx
ORDER BY idx
LIMIT :limit
"""


def batch_page(conn: Conn, owner: str, query: BatchesQuery) -> dict[str, Any]:
    """The tenant's batches, newest first, with an opaque keyset cursor."""
    after_created_at, after_id = query.after or (None, None)
    rows = conn.all(
        _LIST,
        owner=owner,
        after_created_at=after_created_at,
        after_id=after_id,
        limit=query.limit + 1,
    )
    return _shapes.page(rows, query.limit, _shapes.batch, _created_position, BATCHES_CURSOR)


def _created_position(row: dict[str, Any]) -> tuple[datetime, str]:
    return row["created_at"], row["id"]


def batch(conn: Conn, owner: str, batch_id: str) -> dict[str, Any]:
    """One batch with how many of its items are in each status."""
    row = conn.one(_ONE, batch_id=batch_id, owner=owner)
    if row is None:
        raise _not_found(batch_id)
    counts = dict.fromkeys(BATCH_ITEM_STATUSES, 0)
    for status, items in conn.run(_COUNTS, batch_id=batch_id):
        counts[status] = items
    return {**_shapes.batch(row), "counts": counts}


def batch_items(conn: Conn, owner: str, batch_id: str, query: BatchItemsQuery) -> dict[str, Any]:
    """A batch's items in index order, optionally of one status, with their results."""
    if conn.one(_EXISTS, batch_id=batch_id, owner=owner) is None:
        raise _not_found(batch_id)
    rows = conn.all(
        _ITEMS,
        batch_id=batch_id,
        owner=owner,
        status=query.status,
        after_idx=-1 if query.after is None else query.after,
        limit=query.limit + 1,
    )
    return _shapes.page(rows, query.limit, _shapes.batch_item, _idx_position, BATCH_ITEMS_CURSOR)


def _idx_position(row: dict[str, Any]) -> tuple[int]:
    return (row["idx"],)


def _not_found(batch_id: str) -> NotFound:
    return NotFound.of("Batch", batch_id)

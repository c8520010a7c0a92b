"""The batch tables as a state machine: every transition is one guarded UPDATE.

    item:   pending --claim--> running --succeed--> succeeded
                                       --fail-----> failed
                                       --release--> pending
            running, lease expired --claim (takeover)--> running
    batch:  (none) --admit--> running --finish--> succeeded | failed
            (none) --reject-> rejected --admit (same owner, new message)--> running

A claim adds one to `attempts` and returns it: that number is the claim's
fencing token. A worker's later writes (renew, succeed, fail, release) match
`status = 'running' AND attempts = token`, so a worker whose lease was taken
over writes nothing. Times are the database's (`now()`), one clock for every
instance. Hot rows are the item's own; no counter row is updated per item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.batch._message import BatchMessage
from shared.db import Conn

__all__ = [
    "FINAL",
    "Existing",
    "ItemState",
    "admit",
    "claim",
    "counts",
    "fail",
    "find_stored_conversation",
    "finish",
    "item_requests",
    "item_states",
    "owner_known",
    "record_rejected",
    "release",
    "renew",
    "stored_outputs",
    "succeed",
]

FINAL = frozenset({"succeeded", "failed"})


@dataclass(frozen=True)
class Existing:
    """A batch row that was already there when a message arrived."""

    owner_id: str
    message_id: str | None
    status: str


@dataclass(frozen=True)
class ItemState:
    status: str
    # Running under a lease that has not expired: someone is working on it.
    live: bool


def owner_known(conn: Conn, owner: str) -> bool:
    """An owner is known while its tenant is enabled and has a key that is not revoked."""
    row = conn.one(
        "SELECT 1 AS found FROM api_keys AS k JOIN tenants AS t ON t.id = k.owner_id"
        " WHERE k.owner_id = :owner AND k.revoked_at IS NULL AND NOT t.disabled LIMIT 1",
        owner=owner,
    )
    return row is not None


def record_rejected(
    conn: Conn,
    *,
    batch_id: str,
    owner: str,
    message_id: str | None,
    published_at: datetime | None,
    error: Mapping[str, Any],
) -> bool:
    """Record a refused message; False if a live batch (or another owner's) holds the id."""
    row = conn.one(
        "INSERT INTO batches (id, owner_id, message_id, status, item_count, error, published_at)"
        " VALUES (:id, :owner, :message_id, 'rejected', 0, CAST(:error AS jsonb), :published)"
        " ON CONFLICT (id) DO UPDATE SET message_id = EXCLUDED.message_id,"
        " error = EXCLUDED.error, published_at = EXCLUDED.published_at, updated_at = now()"
        " WHERE batches.status = 'rejected' AND batches.owner_id = EXCLUDED.owner_id"
        " RETURNING id",
        id=batch_id,
        owner=owner,
        message_id=message_id,
        error=json.dumps(error),
        published=published_at,
    )
    return row is not None


def admit(
    conn: Conn, message: BatchMessage, message_id: str, published_at: datetime | None
) -> Existing | None:
    """Create the batch and its pending items (run inside a transaction); None when created.

    A batch id held by a rejected batch of the same owner (or of no known owner) is
    taken over, so a publisher can fix and republish a refused batch under its id.
    Two deliveries admitting at once serialise on the primary key: the second sees
    the first's batch and gets it back as `Existing`.
    """
    created = conn.one(
        "INSERT INTO batches (id, owner_id, message_id, status, item_count, published_at)"
        " VALUES (:id, :owner, :message_id, 'running', :count, :published)"
        " ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id,"
        " message_id = EXCLUDED.message_id, status = 'running',"
        " item_count = EXCLUDED.item_count, error = NULL,"
        " published_at = EXCLUDED.published_at, created_at = now(), updated_at = now()"
        " WHERE batches.status = 'rejected' AND batches.owner_id IN (EXCLUDED.owner_id, '')"
        " RETURNING id",
        id=message.batch_id,
        owner=message.owner,
        message_id=message_id,
        count=len(message.items),
        published=published_at,
    )
    if created is None:
        row = conn.one(
            "SELECT owner_id, message_id, status FROM batches WHERE id = :id", id=message.batch_id
        )
        assert row is not None  # the conflict that stopped the insert is this row
        return Existing(**row)
    conn.run(
        "INSERT INTO batch_items (batch_id, idx, owner_id, custom_id, status, request)"
        " SELECT :batch_id, CAST(e.ordinality AS integer) - 1, :owner,"
        " e.value ->> 'custom_id', 'pending', e.value"
        " FROM jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS e(value, ordinality)"
        " ON CONFLICT (batch_id, idx) DO NOTHING",
        batch_id=message.batch_id,
        owner=message.owner,
        items=json.dumps([item.request for item in message.items]),
    )
    return None


def item_requests(conn: Conn, batch_id: str) -> list[Any]:
    """The items of a batch as they were published, in order."""
    rows = conn.run(
        "SELECT request FROM batch_items WHERE batch_id = :batch_id ORDER BY idx",
        batch_id=batch_id,
    )
    return [_json(r[0]) for r in rows]


def item_states(
    conn: Conn, batch_id: str, idxs: Sequence[int] | None = None
) -> dict[int, ItemState]:
    """The status of each item (of the given ones, or all)."""
    rows = conn.run(
        "SELECT idx, status, (status = 'running' AND lease_until >= now()) AS live"
        " FROM batch_items WHERE batch_id = :batch_id"
        " AND (CAST(:all AS boolean) OR idx = ANY(CAST(:idxs AS integer[])))",
        batch_id=batch_id,
        all=idxs is None,
        idxs=list(idxs or []),
    )
    return {int(idx): ItemState(status, bool(live)) for idx, status, live in rows}


def claim(conn: Conn, batch_id: str, idx: int, lease_s: float) -> int | None:
    """Take a pending item, or a running one whose lease expired; its token, or None."""
    row = conn.one(
        "UPDATE batch_items SET status = 'running', attempts = attempts + 1,"
        " lease_until = now() + make_interval(secs => :lease_s),"
        " started_at = coalesce(started_at, now())"
        " WHERE batch_id = :batch_id AND idx = :idx"
        " AND (status = 'pending' OR (status = 'running' AND lease_until < now()))"
        " RETURNING attempts",
        batch_id=batch_id,
        idx=idx,
        lease_s=float(lease_s),
    )
    return None if row is None else int(row["attempts"])


def renew(conn: Conn, batch_id: str, held: Mapping[int, int], lease_s: float) -> int:
    """Extend the leases this worker still holds (idx -> token); how many it still holds."""
    if not held:
        return 0
    rows = conn.run(
        "UPDATE batch_items AS i SET lease_until = now() + make_interval(secs => :lease_s)"
        " FROM unnest(CAST(:idxs AS integer[]), CAST(:tokens AS integer[])) AS held(idx, token)"
        " WHERE i.batch_id = :batch_id AND i.idx = held.idx AND i.attempts = held.token"
        " AND i.status = 'running' RETURNING i.idx",
        batch_id=batch_id,
        idxs=list(held),
        tokens=list(held.values()),
        lease_s=float(lease_s),
    )
    return len(rows)


def succeed(
    conn: Conn, batch_id: str, idx: int, token: int, conversation_id: str, result: Any
) -> bool:
    row = conn.one(
        "UPDATE batch_items SET status = 'succeeded', conversation_id = :conversation_id,"
        " result = CAST(:result AS jsonb), error = NULL, lease_until = NULL, finished_at = now()"
        " WHERE batch_id = :batch_id AND idx = :idx AND status = 'running' AND attempts = :token"
        " RETURNING idx",
        batch_id=batch_id,
        idx=idx,
        token=token,
        conversation_id=conversation_id,
        result=json.dumps(result),
    )
    return row is not None


def fail(conn: Conn, batch_id: str, idx: int, token: int, error: Mapping[str, Any]) -> bool:
    row = conn.one(
        "UPDATE batch_items SET status = 'failed', error = CAST(:error AS jsonb),"
        " lease_until = NULL, finished_at = now()"
        " WHERE batch_id = :batch_id AND idx = :idx AND status = 'running' AND attempts = :token"
        " RETURNING idx",
        batch_id=batch_id,
        idx=idx,
        token=token,
        error=json.dumps(error),
    )
    return row is not None


def release(conn: Conn, batch_id: str, idx: int, token: int, *, unsent: bool) -> bool:
    """Give a claimed item back as pending.

    `unsent`: this claim certainly sent nothing to Mistral that could have created
    a conversation, so the attempt is given back too. `attempts` then counts only
    the claims that may have reached Mistral, which is what tells a later claim to
    look upstream first, and what BATCH_ITEM_MAX_ATTEMPTS bounds. Tokens stay
    unique among live claims: attempts never drops below a value a running
    claim still holds.
    """
    row = conn.one(
        "UPDATE batch_items SET status = 'pending', lease_until = NULL,"
        " attempts = attempts - CASE WHEN CAST(:unsent AS boolean) THEN 1 ELSE 0 END,"
        " started_at = CASE WHEN CAST(:unsent AS boolean) AND attempts = 1"
        " THEN NULL ELSE started_at END"
        " WHERE batch_id = :batch_id AND idx = :idx AND status = 'running' AND attempts = :token"
        " RETURNING idx",
        batch_id=batch_id,
        idx=idx,
        token=token,
        unsent=unsent,
    )
    return row is not None


def counts(conn: Conn, batch_id: str) -> dict[str, int]:
    found = dict.fromkeys(("pending", "running", "succeeded", "failed"), 0)
    for status, n in conn.run(
        "SELECT status, count(*) FROM batch_items WHERE batch_id = :batch_id GROUP BY status",
        batch_id=batch_id,
    ):
        found[status] = int(n)
    return found


def finish(conn: Conn, batch_id: str, status: str, error: Mapping[str, Any] | None) -> bool:
    """Close a running batch; True only for the one caller that closed it."""
    row = conn.one(
        "UPDATE batches SET status = :status, error = CAST(:error AS jsonb), updated_at = now()"
        " WHERE id = :id AND status IN ('pending', 'running') RETURNING id",
        id=batch_id,
        status=status,
        error=None if error is None else json.dumps(error),
    )
    return row is not None


def find_stored_conversation(conn: Conn, owner: str, marker: Mapping[str, str]) -> str | None:
    """The owner's stored conversation carrying this item's marker (metadata GIN index)."""
    row = conn.one(
        "SELECT id FROM conversations WHERE owner_id = :owner"
        " AND metadata @> CAST(:marker AS jsonb) ORDER BY created_at LIMIT 1",
        owner=owner,
        marker=json.dumps(marker),
    )
    return None if row is None else str(row["id"])


def stored_outputs(conn: Conn, conversation_id: str) -> tuple[list[Any], dict[str, int]]:
    """A stored conversation's output entries and its token usage."""
    rows = conn.all(
        "SELECT type, body, prompt_tokens, completion_tokens FROM conversation_entries"
        " WHERE conversation_id = :id ORDER BY seq",
        id=conversation_id,
    )
    outputs = [
        _json(r["body"]) for r in rows if r["type"] not in ("message.input", "function.result")
    ]
    prompt = sum(int(r["prompt_tokens"]) for r in rows)
    completion = sum(int(r["completion_tokens"]) for r in rows)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return outputs, usage


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value

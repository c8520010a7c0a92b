"""Ownership records of tenant-owned Mistral objects: files, libraries, documents, batch jobs.

Mistral keeps them under the gateway's one API key and cannot tell tenants apart, so the
`owned_resources` table (migration 0007) is the authority on whose each object is. A row
is written, with its audit row, in one transaction before the caller sees the object's id;
an id that is not one of the caller's live rows is "not found", exactly as a missing one.
A batch job's row also names the key that created it and, once its spend was counted,
when (`metered_at`, migration 0008); the files Mistral makes for a job are adopted as
the job owner's (`adopt_file`, their `parent_id` the job's id). Migration 0010 adds what
its create reserved of the token budget (`budget_reservation`) and when the sweep last
took it (`swept_at`, the sweep's queue: `take_unmetered_jobs`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.db import Conn, Pool
from shared.errors import NotFound
from shared.limits.ratelimit import Reservation
from shared.tenancy import audit

__all__ = [
    "KINDS",
    "JobState",
    "Kind",
    "Page",
    "SweptJob",
    "adopt_file",
    "check_owned",
    "claim_spend",
    "file_sizes",
    "library_ids_in_tools",
    "mark_deleted",
    "read_page",
    "job_state",
    "record_created",
    "refresh_body",
    "release_swept",
    "sweep_started",
    "take_unmetered_jobs",
]

Kind = Literal["file", "library", "document", "batch_job"]
KINDS: tuple[Kind, ...] = ("file", "library", "document", "batch_job")
# How Mistral words each kind in a 404 ("File 'x' not found").
WHAT: dict[str, str] = {
    "file": "File",
    "library": "Library",
    "document": "Document",
    "batch_job": "Batch job",
}


def _one_owned(conn: Conn, tenant: str, kind: str, ids: Sequence[str], parent: str | None) -> None:
    rows = conn.all(
        "SELECT id FROM owned_resources WHERE kind = :kind AND owner_id = :owner"
        " AND status = 'active' AND id = ANY(CAST(:ids AS text[]))"
        " AND (CAST(:parent AS text) IS NULL OR parent_id = :parent)",
        kind=kind,
        owner=tenant,
        ids=list(ids),
        parent=parent,
    )
    found = {row["id"] for row in rows}
    for ident in ids:
        if ident not in found:
            raise NotFound.of(WHAT[kind], ident)


def check_owned(
    db: Pool | Conn,
    tenant: str,
    kind: Kind,
    ids: Iterable[str],
    *,
    parent: str | None = None,
) -> None:
    """Every id names a live `kind` object of `tenant` (inside library `parent`, for a
    document), or 404 `not_found` naming the first that does not: another tenant's object is
    refused exactly as a missing one. For references too: a file in a batch job or an OCR
    call, a library in a `document_library` tool."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        return
    if isinstance(db, Pool):
        with db.connection() as conn:
            _one_owned(conn, tenant, kind, wanted, parent)
    else:
        _one_owned(conn=db, tenant=tenant, kind=kind, ids=wanted, parent=parent)


def file_sizes(conn: Conn, tenant: str, ids: Sequence[str]) -> dict[str, int]:
    """The size in bytes Mistral gave (its `bytes`) of each of the tenant's files that has
    one, by id."""
    if not ids:
        return {}
    rows = conn.all(
        "SELECT id, body ->> 'bytes' AS size FROM owned_resources WHERE kind = 'file'"
        " AND owner_id = :owner AND status = 'active' AND id = ANY(CAST(:ids AS text[]))",
        owner=tenant,
        ids=list(ids),
    )
    sizes: dict[str, int] = {}
    for row in rows:
        try:
            sizes[row["id"]] = max(0, int(row["size"]))
        except (TypeError, ValueError):
            continue
    return sizes


def record_created(
    conn: Conn,
    tenant: str,
    kind: Kind,
    body: Mapping[str, Any],
    *,
    parent: str | None = None,
    created_by: str | None = None,
    reservation: Reservation | None = None,
    idempotency_key: str | None = None,
) -> None:
    """The new object's row and its audit row, on the caller's transaction: `created_by`
    is the id of the key that made it (`created_by_me` lists; a batch job's spend),
    `reservation` what a batch job's create reserved of the token budget, and
    `idempotency_key` the request's Idempotency-Key (`made_under_key`)."""
    conn.run(
        "INSERT INTO owned_resources"
        " (kind, id, owner_id, parent_id, body, api_key_id, budget_reservation,"
        " idempotency_key)"
        " VALUES (:kind, :id, :owner, :parent, CAST(:body AS jsonb), :created_by,"
        " CAST(:reservation AS jsonb), :idempotency_key)",
        kind=kind,
        id=str(body["id"]),
        owner=tenant,
        parent=parent,
        body=json.dumps(body),
        created_by=created_by,
        reservation=json.dumps(reservation.to_json()) if reservation else None,
        idempotency_key=idempotency_key,
    )
    audit.record(conn, f"{kind}.create", str(body["id"]), tenant_id=tenant)


def made_under_key(conn: Conn, tenant: str, kind: Kind, key: str) -> dict[str, Any] | None:
    """The body of the object of `kind` the tenant's create under Idempotency-Key `key`
    made (as the gateway recorded it), if one did."""
    row = conn.one(
        "SELECT body FROM owned_resources WHERE owner_id = :owner AND idempotency_key = :key"
        " AND kind = :kind ORDER BY created_at LIMIT 1",
        owner=tenant,
        key=key,
        kind=kind,
    )
    return None if row is None else dict(row["body"])


def mark_deleted(conn: Conn, tenant: str, kind: Kind, ident: str) -> None:
    """The object is gone from Mistral: its row (and a library's documents) end, audited."""
    conn.run(
        "UPDATE owned_resources SET status = 'deleted', updated_at = now()"
        " WHERE kind = :kind AND id = :id AND owner_id = :owner",
        kind=kind,
        id=ident,
        owner=tenant,
    )
    if kind == "library":
        conn.run(
            "UPDATE owned_resources SET status = 'deleted', updated_at = now()"
            " WHERE kind = 'document' AND parent_id = :id AND owner_id = :owner",
            id=ident,
            owner=tenant,
        )
    audit.record(conn, f"{kind}.delete", ident, tenant_id=tenant)


def refresh_body(conn: Conn, tenant: str, kind: Kind, body: Mapping[str, Any]) -> None:
    """Keep Mistral's latest answer for the object, which lists serve."""
    conn.run(
        "UPDATE owned_resources SET body = CAST(:body AS jsonb), updated_at = now()"
        " WHERE kind = :kind AND id = :id AND owner_id = :owner AND status = 'active'",
        kind=kind,
        id=str(body.get("id")),
        owner=tenant,
        body=json.dumps(body),
    )


# -- a batch job's results and spend ---------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """What the gateway holds of one of a tenant's batch jobs: the key that created it,
    whether its spend was counted, which of the files it names no tenant owns yet, and
    what its create reserved of the tenant's token budget (None: nothing)."""

    key_id: str | None
    metered: bool
    unowned_files: tuple[str, ...]
    reservation: Reservation | None = None


def job_state(conn: Conn, tenant: str, job_id: str, file_ids: Sequence[str]) -> JobState | None:
    """The job's state, or None when it is not one of the tenant's live jobs."""
    row = conn.one(
        "SELECT api_key_id, metered_at IS NOT NULL AS metered, budget_reservation"
        " FROM owned_resources"
        " WHERE kind = 'batch_job' AND id = :id AND owner_id = :owner AND status = 'active'",
        id=job_id,
        owner=tenant,
    )
    if row is None:
        return None
    known: set[str] = set()
    if file_ids:
        rows = conn.all(
            "SELECT id FROM owned_resources WHERE kind = 'file' AND id = ANY(CAST(:ids AS text[]))",
            ids=list(file_ids),
        )
        known = {r["id"] for r in rows}
    unowned = tuple(f for f in dict.fromkeys(file_ids) if f not in known)
    reservation = Reservation.from_json(row["budget_reservation"])
    return JobState(row["api_key_id"], bool(row["metered"]), unowned, reservation)


def adopt_file(conn: Conn, tenant: str, body: Mapping[str, Any], job_id: str) -> None:
    """A file Mistral made for the tenant's batch job (its output or error file) becomes
    the tenant's, audited as `file.create`; written once, whoever writes it first (a file
    some tenant already owns is left as it is)."""
    row = conn.one(
        "INSERT INTO owned_resources (kind, id, owner_id, parent_id, body)"
        " VALUES ('file', :id, :owner, :job, CAST(:body AS jsonb))"
        " ON CONFLICT (kind, id) DO NOTHING RETURNING id",
        id=str(body["id"]),
        owner=tenant,
        job=job_id,
        body=json.dumps(body),
    )
    if row is not None:
        audit.record(
            conn, "file.create", str(body["id"]), tenant_id=tenant, changes={"batch_job": job_id}
        )


def claim_spend(conn: Conn, tenant: str, job_id: str) -> bool:
    """Mark the finished job's spend as counted; True for the one transaction that did
    (the guard that makes two requests seeing it end at once record one usage event)."""
    row = conn.one(
        "UPDATE owned_resources SET metered_at = now()"
        " WHERE kind = 'batch_job' AND id = :id AND owner_id = :owner AND metered_at IS NULL"
        " RETURNING id",
        id=job_id,
        owner=tenant,
    )
    return row is not None


@dataclass(frozen=True)
class SweptJob:
    """A batch job a sweep took: whose it is, and when it was swept before (None: never)."""

    owner: str
    id: str
    previous: datetime | None


def sweep_started(conn: Conn) -> datetime:
    """The database's clock: a sweep takes only jobs swept before it started."""
    row = conn.one("SELECT now() AS now")
    assert row is not None
    started: datetime = row["now"]
    return started


def take_unmetered_jobs(conn: Conn, since: datetime, limit: int) -> list[SweptJob]:
    """Up to `limit` live batch jobs of any tenant whose spend is not counted yet and that
    were not swept since `since`, least recently swept first (never swept before all),
    marked swept now. Rows another sweep holds are skipped (two sweeps at once take
    different jobs)."""
    rows = conn.all(
        "WITH picked AS ("
        "  SELECT kind, id, swept_at FROM owned_resources"
        "  WHERE kind = 'batch_job' AND status = 'active' AND metered_at IS NULL"
        "    AND (swept_at IS NULL OR swept_at < :since)"
        "  ORDER BY swept_at ASC NULLS FIRST, created_at, id LIMIT :limit"
        "  FOR UPDATE SKIP LOCKED),"
        " taken AS ("
        "  UPDATE owned_resources o SET swept_at = now() FROM picked"
        "  WHERE o.kind = picked.kind AND o.id = picked.id"
        "  RETURNING o.owner_id, o.id, o.created_at, picked.swept_at AS previous)"
        " SELECT owner_id, id, previous FROM taken"
        " ORDER BY previous ASC NULLS FIRST, created_at, id",
        since=since,
        limit=limit,
    )
    return [SweptJob(r["owner_id"], r["id"], r["previous"]) for r in rows]


def release_swept(conn: Conn, jobs: Sequence[SweptJob]) -> None:
    """Jobs a sweep took but did not get to: back to their place in the queue."""
    for job in jobs:
        conn.run(
            "UPDATE owned_resources SET swept_at = :previous"
            " WHERE kind = 'batch_job' AND id = :id AND owner_id = :owner",
            previous=job.previous,
            id=job.id,
            owner=job.owner,
        )


@dataclass(frozen=True)
class Page:
    """One page of a tenant's objects of a kind: Mistral's bodies, how many match, and
    where the page's last row is (its `created_at` and id: a keyset position), if another
    page follows."""

    bodies: list[dict[str, Any]]
    total: int
    last: tuple[datetime, str] | None = None


# Filters are applied in SQL on Mistral's stored body; a NULL parameter means "no filter".
_WHERE = """
FROM owned_resources
WHERE kind = :kind AND owner_id = :owner AND status = 'active'
  AND (CAST(:parent AS text) IS NULL OR parent_id = :parent)
  AND (CAST(:search AS text) IS NULL OR strpos(lower(body ->> :search_field), lower(:search)) > 0)
  AND (CAST(:equals AS jsonb) IS NULL OR body @> CAST(:equals AS jsonb))
  AND (CAST(:one_of AS jsonb) IS NULL OR NOT EXISTS (
       SELECT 1 FROM jsonb_each(CAST(:one_of AS jsonb)) AS wanted(field, allowed)
       WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(wanted.allowed) AS a(value)
                         WHERE a.value = body ->> wanted.field)))
  AND (CAST(:created_after AS timestamptz) IS NULL
       OR created_at > CAST(:created_after AS timestamptz))
  AND (CAST(:created_by AS text) IS NULL OR api_key_id = :created_by)
  AND (CAST(:attributes AS jsonb) IS NULL
       OR body -> 'attributes' @> CAST(:attributes AS jsonb))
"""
# A keyset page (newest first) starts strictly after the position its token names.
_AFTER = """
  AND (CAST(:after_created AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(:after_created AS timestamptz), :after_id))
"""
_ORDERS = {
    "newest": "created_at DESC, id DESC",
    "oldest": "created_at ASC, id ASC",
    "name": "lower(body ->> 'name') ASC, id ASC",
    "name_desc": "lower(body ->> 'name') DESC, id DESC",
}


def read_page(
    pool: Pool,
    tenant: str,
    kind: Kind,
    *,
    page: int,
    page_size: int,
    parent: str | None = None,
    search: tuple[str, str] | None = None,
    equals: Mapping[str, Any] | None = None,
    one_of: tuple[str, Sequence[str]] | Mapping[str, Sequence[str]] | None = None,
    created_after: str | None = None,
    created_by: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    after: tuple[datetime, str] | None = None,
    order: str = "newest",
    count: bool = True,
) -> Page:
    """A page of the tenant's live `kind` objects that match every filter: `search`
    (field, text) is a case-insensitive substring, `equals` a JSON containment, `one_of`
    (field, values), or a mapping of several, the values each field may take, `created_by`
    the key that made them, `attributes` a JSON containment in a document's `attributes`.
    The page is `page` by number, or (newest first only) the one just `after` a keyset
    position. Without `count`, the matches are not counted (`total` is -1)."""
    if after is not None and order != "newest":
        raise ValueError("a keyset page is newest first")
    if isinstance(one_of, tuple):
        one_of = {one_of[0]: one_of[1]}
    allowed = {field: list(values) for field, values in (one_of or {}).items()}
    params = {
        "kind": kind,
        "owner": tenant,
        "parent": parent,
        "search_field": search[0] if search else "",
        "search": search[1] if search else None,
        "equals": json.dumps(equals) if equals else None,
        "one_of": json.dumps(allowed) if allowed else None,
        "created_after": created_after,
        "created_by": created_by,
        "attributes": json.dumps(attributes) if attributes is not None else None,
    }
    with pool.connection() as conn:
        counted = conn.one("SELECT count(*) AS n " + _WHERE, **params) if count else None
        # One more row than asked tells whether another page follows.
        rows = conn.all(
            f"SELECT body, created_at, id {_WHERE} {_AFTER}"
            f" ORDER BY {_ORDERS[order]} LIMIT :limit OFFSET :offset",
            **params,
            after_created=after[0] if after else None,
            after_id=after[1] if after else None,
            limit=page_size + 1,
            offset=0 if after else page * page_size,
        )
    total = int(counted["n"]) if counted else (0 if count else -1)
    shown = rows[:page_size]
    last = (shown[-1]["created_at"], str(shown[-1]["id"])) if len(rows) > page_size else None
    return Page([dict(row["body"]) for row in shown], total, last)


def library_ids_in_tools(tools: Any) -> list[str]:
    """The library ids named by the `document_library` tools of a tool list (agents,
    conversations): each must be the caller's (`check_owned(..., "library", ...)`)."""
    ids: list[str] = []
    if not isinstance(tools, list):
        return ids
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "document_library":
            found = tool.get("library_ids")
            if isinstance(found, list):
                ids += [str(i) for i in found]
    return ids

"""Tenant-owned Mistral resources: files, libraries with their documents and accesses, and
Mistral's batch jobs, each one kept to the tenant that made it.

    create   (check references) -> Mistral create -> record + audit row, one transaction
    read     owned? -> Mistral answers (relayed as it came); the stored body is refreshed
    change   owned? -> Mistral changes -> the stored body is refreshed
    delete   owned? -> Mistral deletes (its 404 counts: already gone) -> mark deleted + audit
    list     answered from the records, in Mistral's list shapes, paged as Mistral pages

A create's record is written before the caller sees the new id. If it cannot be written
(after one retry), the object is deleted in Mistral (a batch job is cancelled, then
deleted) and the caller gets 503 `service_unavailable`; if that undo fails too, the
gateway logs `resource_out_of_sync` at ERROR with the kind and id, for an operator.

Unlike agents' writes, these take no in-progress record: ids are Mistral's, an object's
owner never changes, and two writes of one tenant to one object (a delete racing a
document upload into the same library) are Mistral's to order. A create that fails
without saying whether Mistral made the object (a timeout after the body was sent) is
not repaired: such an object stays in Mistral unrecorded, unreachable through the
gateway (no tenant owns it), until an operator removes it.

A list serves the bodies Mistral last gave the gateway: reads and changes through the
gateway refresh them, and a list page first asks Mistral again for each item on it that
was still changing (a batch job not finished, a document not processed), at most one
call per item on the page.

A batch job's body, whenever the gateway sees one (get, cancel, a list's refresh, the
sweep: `shared.resources.sweep`), brings its results with it (`_job_seen`): the output
and error files it names become the job owner's, and the first body seen ended has the
job's tokens recorded as one usage event and settled in the tenant's budget against
what its create reserved (`shared.resources.pricing`), exactly once (the `metered_at`
guard).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from shared import cursors, jsonsafe
from shared.conversations import store as conversation_store
from shared.conversations.store import Usage
from shared.db import Pool
from shared.errors import (
    BadRequest,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UpstreamRejected,
    UpstreamUnavailable,
    ValidationFailed,
    field_error,
)
from shared.limits.ratelimit import RateLimiter, Reservation
from shared.mistral import MistralClient, Retry, UpstreamResponse, UpstreamStream
from shared.observability import log_event
from shared.query import query_bool, query_integer
from shared.resources.pricing import BatchJobRequest
from shared.resources.records import (
    WHAT,
    Kind,
    Page,
    adopt_file,
    check_owned,
    claim_spend,
    job_state,
    mark_deleted,
    read_page,
    record_created,
    refresh_body,
)
from shared.tenancy import audit

__all__ = [
    "QUERY_JSON",
    "QUERY_RULES",
    "JobSeen",
    "ListQuery",
    "Upload",
    "batch_job_action",
    "create_batch_job",
    "create_library",
    "delete",
    "download_file",
    "list_batch_jobs",
    "list_documents",
    "list_files",
    "list_libraries",
    "owned_call",
    "parse_list_query",
    "refresh_batch_job",
    "share_library",
    "upload_document",
    "upload_file",
]

# Mistral's default page size for these lists.
_DEFAULT_PAGE_SIZE = 100
_MAX_PAGE = 1_000_000
_MAX_PAGE_SIZE = 1000
# Batch job states after which nothing changes.
_BATCH_DONE = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})
# The operation a finished batch job's usage event is recorded under.
BATCH_USAGE_OPERATION = "batch.jobs"
# A model name longer than this is none.
_MAX_MODEL = 200
# Document processing states after which nothing changes.
_DOCUMENT_DONE = frozenset({"Completed", "Failed", "completed", "failed", "done", "error"})


@dataclass(frozen=True)
class Upload:
    """A multipart body relayed to Mistral as it arrives: its content type (with the
    boundary), its length if the caller gave one, and its chunks."""

    content_type: str
    length: int | None
    chunks: Iterable[bytes]


def _path(*segments: str) -> str:
    return "/v1/" + "/".join(quote(s, safe="") for s in segments)


_PATHS: dict[str, Callable[[str, str | None], str]] = {
    "file": lambda ident, _parent: _path("files", ident),
    "library": lambda ident, _parent: _path("libraries", ident),
    "document": lambda ident, parent: _path("libraries", str(parent), "documents", ident),
    "batch_job": lambda ident, _parent: _path("batch", "jobs", ident),
}
_DELETE_OPERATIONS = {
    "file": "files.delete",
    "library": "libraries.delete",
    "document": "libraries.documents.delete",
    "batch_job": "batch.jobs.delete",
}


# -- list queries --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """Mistral's paging (`page` from 0, `page_size`), the filters the gateway applies, and
    the id of the key asking (what `created_by_me` means)."""

    page: int = 0
    page_size: int = _DEFAULT_PAGE_SIZE
    search: str | None = None
    values: Mapping[str, tuple[str, ...]] | None = None
    caller_key: str | None = None

    def one(self, name: str) -> str | None:
        found = (self.values or {}).get(name) or ()
        return found[0] if found else None

    def many(self, name: str) -> tuple[str, ...]:
        return tuple((self.values or {}).get(name) or ())

    def flag(self, name: str) -> bool | None:
        """A boolean parameter (None when absent); 422 if it is no boolean."""
        return query_bool(self.one(name), name)


# What a list's query refuses beyond the SDK's parameter types (larger values are capped,
# not refused); the OpenAPI document adds these to every tenant-owned list's parameters.
QUERY_RULES: Mapping[str, Mapping[str, int]] = {"page": {"minimum": 0}, "page_size": {"minimum": 1}}
# Query parameters the gateway reads as JSON (422 otherwise): the OpenAPI document gives
# each as JSON content of this schema instead of the SDK's plain string.
QUERY_JSON: Mapping[str, Mapping[str, Any]] = {"filters_attributes": {"type": "object"}}


def parse_list_query(
    values: Mapping[str, list[str]], *, caller_key: str | None = None
) -> ListQuery:
    """Paging and filters from a query string (each name's repeated values), asked by the
    key `caller_key`."""

    def first(name: str) -> str | None:
        found = values.get(name) or []
        return found[0] if found else None

    return ListQuery(
        # Larger values are capped, not refused (QUERY_RULES above).
        page=query_integer(
            first("page"),
            "page",
            default=0,
            minimum=QUERY_RULES["page"]["minimum"],
            maximum=_MAX_PAGE,
            clamp=True,
        ),
        page_size=query_integer(
            first("page_size"),
            "page_size",
            default=_DEFAULT_PAGE_SIZE,
            minimum=QUERY_RULES["page_size"]["minimum"],
            maximum=_MAX_PAGE_SIZE,
            clamp=True,
        ),
        search=first("search") or None,
        values={name: tuple(v) for name, v in values.items()},
        caller_key=caller_key,
    )


def _timestamp(raw: str | None, name: str) -> str | None:
    """An ISO 8601 date-time from the query string, in UTC (PostgreSQL takes offsets only to
    +/-15:59, ISO 8601 to +/-23:59; a time without one is UTC); 422 if it is none."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):
        msg = "Input should be a valid datetime"
        raise ValidationFailed([field_error(("query", name), msg, "datetime_parsing")]) from None


def _json_object(raw: str | None, name: str) -> dict[str, Any] | None:
    """A JSON object given in the query string; 422 if it is none, or holds what PostgreSQL
    cannot compare (NUL, a lone surrogate, a number that is not finite)."""
    if raw is None:
        return None
    try:
        value = jsonsafe.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        msg = "Input should be a JSON object"
        raise ValidationFailed([field_error(("query", name), msg, "dict_type")])
    jsonsafe.check_storable(value, ("query", name))
    return value


def _page_position(token: str | None) -> tuple[datetime, str] | None:
    """Where a libraries `page_token` says the last page ended; 400 for a token the gateway
    did not hand out, as the agents' pages answer one."""
    if not token:
        return None
    try:
        created, ident = cursors.decode(token, "libraries", (datetime, str), param="page_token")
    except ValidationFailed:
        raise BadRequest(f"Invalid page_token {token!r}", code="invalid_page_token") from None
    assert isinstance(created, datetime)
    return created, str(ident)


def _next_token(page: Page) -> str | None:
    return cursors.encode("libraries", *page.last) if page.last else None


def _pagination(page: Page, query: ListQuery) -> dict[str, Any]:
    pages = -(-page.total // query.page_size)
    return {
        "total_items": page.total,
        "total_pages": pages,
        "current_page": query.page,
        "page_size": query.page_size,
        "has_more": (query.page + 1) < pages,
    }


# -- shared steps --------------------------------------------------------------------------


def _read_object(answer: UpstreamResponse) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise UpstreamUnavailable("Mistral sent an answer the gateway could not read")
    return body


def _out_of_sync(kind: str, ident: str, tenant: str, action: str, exc: BaseException) -> None:
    log_event(
        "resource_out_of_sync",
        "ERROR",
        kind=kind,
        resource_id=ident,
        owner=tenant,
        action=action,
        error=type(exc).__name__,
    )


def _undo_create(client: MistralClient, tenant: str, kind: Kind, body: Mapping[str, Any]) -> None:
    """Take back an object whose record could not be written."""
    ident = str(body["id"])
    path = _PATHS[kind](ident, body.get("library_id"))
    try:
        if kind == "batch_job" and body.get("status") not in _BATCH_DONE:
            client.call("batch.jobs.cancel", "POST", path + "/cancel", retry=Retry.IDEMPOTENT)
        _delete_upstream(client, kind, path)
    except GatewayError as exc:
        _out_of_sync(kind, ident, tenant, "undo_create", exc)


def _recorded(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    kind: Kind,
    answer: UpstreamResponse,
    parent: str | None = None,
    created_by: str | None = None,
    reservation: Reservation | None = None,
    idempotency_key: str | None = None,
) -> UpstreamResponse:
    """Mistral made the object: its record first (with the key that made it and the
    request's Idempotency-Key), then the caller may see its id (in Mistral's answer,
    relayed as it came)."""
    body = _read_object(answer)
    last: Exception | None = None
    for pause in (0.0, 0.1):
        time.sleep(pause)
        try:
            with pool.transaction() as conn:
                record_created(
                    conn,
                    tenant,
                    kind,
                    body,
                    parent=parent,
                    created_by=created_by,
                    reservation=reservation,
                    idempotency_key=idempotency_key,
                )
            return answer
        except Exception as exc:
            last = exc
    _undo_create(client, tenant, kind, body)
    raise ServiceUnavailable(
        "the gateway could not record the new object, so it was deleted; try again"
    ) from last


def _delete_upstream(client: MistralClient, kind: str, path: str) -> UpstreamResponse | None:
    """Delete in Mistral; None when Mistral says it was already gone."""
    try:
        return client.call(_DELETE_OPERATIONS[kind], "DELETE", path, retry=Retry.IDEMPOTENT)
    except UpstreamRejected as exc:
        if exc.status != 404:
            raise
    return None


def _refresh(pool: Pool, tenant: str, kind: Kind, answer: UpstreamResponse) -> None:
    """Keep the body Mistral just gave (best effort: the answer stands if this fails)."""
    try:
        body = answer.json()
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            with pool.transaction() as conn:
                refresh_body(conn, tenant, kind, body)
    except Exception as exc:
        log_event("resource_refresh_failed", "WARNING", kind=kind, error=type(exc).__name__)


# -- reads and changes of one owned object -------------------------------------------------


def owned_call(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    kind: Kind,
    ident: str,
    *,
    operation: str,
    method: str,
    suffix: str = "",
    parent: str | None = None,
    query_string: str = "",
    body: bytes | None = None,
    refresh: bool = False,
) -> UpstreamResponse:
    """A call about one of the tenant's objects (404 for another tenant's), answered by
    Mistral as it answered; with `refresh`, its answer is the object's new stored body."""
    with pool.connection() as conn:
        if parent is not None:
            check_owned(conn, tenant, "library", [parent])
        check_owned(conn, tenant, kind, [ident], parent=parent)
    path = _PATHS[kind](ident, parent) + suffix + (f"?{query_string}" if query_string else "")
    retry = Retry.IDEMPOTENT if method in ("GET", "PUT", "DELETE") else Retry.UNSENT
    answer = client.call(operation, method, path, body, retry=retry)
    if refresh:
        _refresh(pool, tenant, kind, answer)
    return answer


def delete(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    kind: Kind,
    ident: str,
    *,
    parent: str | None = None,
    limiter: RateLimiter | None = None,
) -> UpstreamResponse:
    """Gone from Mistral, then marked deleted with its audit row; Mistral's answer. When
    Mistral had already lost it, the row ends all the same and the caller gets 404. If the
    row cannot be marked, 503: Mistral answers 404 from now on, so the next delete
    completes it. A batch job is first read as a get reads it (`_seen_before_delete`)."""
    with pool.connection() as conn:
        if parent is not None:
            check_owned(conn, tenant, "library", [parent])
        check_owned(conn, tenant, kind, [ident], parent=parent)
    if kind == "batch_job":
        _seen_before_delete(pool, client, tenant, ident, limiter)
    answer = _delete_upstream(client, kind, _PATHS[kind](ident, parent))
    try:
        with pool.transaction() as conn:
            mark_deleted(conn, tenant, kind, ident)
    except Exception as exc:
        _out_of_sync(kind, ident, tenant, "mark_deleted", exc)
        raise ServiceUnavailable(
            "the object was deleted in Mistral but the gateway could not record it;"
            " send the delete again"
        ) from exc
    if parent is not None:
        _refresh_library(pool, client, tenant, parent)
    if answer is None:
        raise NotFound.of(WHAT[kind], ident)
    return answer


def _seen_before_delete(
    pool: Pool, client: MistralClient, tenant: str, job_id: str, limiter: RateLimiter | None
) -> None:
    """A batch job about to be deleted, seen once more as a get sees it: if it ended
    unmetered, its spend is counted (and its files become the owner's) now, since no read
    or sweep will see it once its record has ended. Best effort: the delete goes on."""
    try:
        refresh_batch_job(pool, client, tenant, job_id, limiter=limiter)
    except GatewayError as exc:
        log_event("resource_refresh_failed", "WARNING", kind="batch_job", error=type(exc).__name__)


def _refresh_library(pool: Pool, client: MistralClient, tenant: str, library_id: str) -> None:
    """A library's counts change with its documents: keep its listed body current."""
    try:
        _refresh(
            pool,
            tenant,
            "library",
            client.call("libraries.get", "GET", _PATHS["library"](library_id, None)),
        )
    except GatewayError as exc:
        log_event("resource_refresh_failed", "WARNING", kind="library", error=type(exc).__name__)


# -- files ---------------------------------------------------------------------------------


def upload_file(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    upload: Upload,
    *,
    created_by: str | None = None,
) -> UpstreamResponse:
    """`POST /v1/files`: relayed to Mistral as it arrives, recorded as the tenant's (made
    by key `created_by`)."""
    answer = client.upload(
        "files.upload", "/v1/files", upload.content_type, upload.chunks, upload.length
    )
    return _recorded(pool, client, tenant, "file", answer, created_by=created_by)


def list_files(pool: Pool, tenant: str, query: ListQuery) -> dict[str, Any]:
    """`GET /v1/files`: the tenant's files, newest first, with Mistral's filters (each of
    `source`, `sample_type`, `mimetypes` given is applied); `include_total=false` leaves
    the matches uncounted (`total` null)."""
    equals: dict[str, Any] = {}
    if purpose := query.one("purpose"):
        equals["purpose"] = purpose
    one_of = {
        "mimetype" if field == "mimetypes" else field: wanted
        for field in ("source", "sample_type", "mimetypes")
        if (wanted := query.many(field))
    }
    counted = query.flag("include_total") is not False
    page = read_page(
        pool,
        tenant,
        "file",
        page=query.page,
        page_size=query.page_size,
        search=("filename", query.search) if query.search else None,
        equals=equals,
        one_of=one_of,
        count=counted,
    )
    return {"data": page.bodies, "object": "list", "total": page.total if counted else None}


def download_file(pool: Pool, client: MistralClient, tenant: str, file_id: str) -> UpstreamStream:
    """`GET /v1/files/{id}/content`: Mistral's bytes relayed as they arrive."""
    check_owned(pool, tenant, "file", [file_id])
    return client.download("files.download", _PATHS["file"](file_id, None) + "/content")


# -- libraries and documents ---------------------------------------------------------------


def create_library(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    body: dict[str, Any],
    *,
    created_by: str | None = None,
    idempotency_key: str | None = None,
) -> UpstreamResponse:
    """`POST /v1/libraries`."""
    if not isinstance(body.get("name"), str):
        raise ValidationFailed([field_error(("body", "name"), "Field required", "missing")])
    answer = client.call(
        "libraries.create", "POST", "/v1/libraries", json.dumps(body).encode(), retry=Retry.UNSENT
    )
    return _recorded(
        pool,
        client,
        tenant,
        "library",
        answer,
        created_by=created_by,
        idempotency_key=idempotency_key,
    )


def list_libraries(pool: Pool, tenant: str, query: ListQuery) -> dict[str, Any]:
    """`GET /v1/libraries`: the tenant's libraries, newest first, by `page` (with
    `pagination`) or after a `page_token` (without it, as Mistral answers); every page
    carries its `next_page_token`. `filter_owned_by_me`, either way, lists the same: every
    library a tenant reaches is its own (Mistral's sharing never crosses tenants)."""
    query.flag("filter_owned_by_me")
    after = _page_position(query.one("page_token"))
    page = read_page(
        pool,
        tenant,
        "library",
        page=query.page,
        page_size=query.page_size,
        search=("name", query.search) if query.search else None,
        after=after,
    )
    if after is not None:
        return {"data": page.bodies, "next_page_token": _next_token(page)}
    return {
        "data": page.bodies,
        "pagination": _pagination(page, query),
        "next_page_token": _next_token(page),
    }


def upload_document(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    library_id: str,
    upload: Upload,
    *,
    created_by: str | None = None,
) -> UpstreamResponse:
    """`POST /v1/libraries/{id}/documents`: into one of the tenant's libraries only."""
    check_owned(pool, tenant, "library", [library_id])
    path = _PATHS["library"](library_id, None) + "/documents"
    answer = client.upload(
        "libraries.documents.upload", path, upload.content_type, upload.chunks, upload.length
    )
    created = _recorded(
        pool, client, tenant, "document", answer, parent=library_id, created_by=created_by
    )
    _refresh_library(pool, client, tenant, library_id)
    return created


def list_documents(
    pool: Pool, client: MistralClient, tenant: str, library_id: str, query: ListQuery
) -> dict[str, Any]:
    """`GET /v1/libraries/{id}/documents`: the library's documents (sort_by created_at or
    name, sort_order asc or desc; `filters_attributes`, a JSON object, keeps those whose
    `attributes` hold each of its values)."""
    # An empty object asks for nothing: every document, whatever its attributes.
    attributes = _json_object(query.one("filters_attributes"), "filters_attributes") or None
    check_owned(pool, tenant, "library", [library_id])
    by_name = query.one("sort_by") == "name"
    ascending = query.one("sort_order") == "asc"
    order = (
        ("name" if ascending else "name_desc") if by_name else ("oldest" if ascending else "newest")
    )
    page = read_page(
        pool,
        tenant,
        "document",
        page=query.page,
        page_size=query.page_size,
        parent=library_id,
        search=("name", query.search) if query.search else None,
        attributes=attributes,
        order=order,
    )
    bodies = _fresh(
        pool,
        client,
        tenant,
        "document",
        page.bodies,
        lambda b: b.get("processing_status") not in _DOCUMENT_DONE,
        "libraries.documents.get",
    )
    return {"pagination": _pagination(page, query), "data": bodies}


def _fresh(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    kind: Kind,
    bodies: list[dict[str, Any]],
    changing: Callable[[Mapping[str, Any]], bool],
    operation: str,
    seen: Callable[[dict[str, Any]], object] | None = None,
) -> list[dict[str, Any]]:
    """A page's bodies, those still changing asked of Mistral again (kept if it fails);
    `seen` takes each new body (else it is stored as the object's body)."""
    fresh = []
    for body in bodies:
        if changing(body):
            try:
                answer = client.call(
                    operation, "GET", _PATHS[kind](body["id"], body.get("library_id"))
                )
                new = _read_object(answer)
                if seen is not None:
                    seen(new)
                else:
                    _refresh(pool, tenant, kind, answer)
                body = new
            except GatewayError as exc:
                log_event("resource_refresh_failed", "WARNING", kind=kind, error=type(exc).__name__)
        fresh.append(body)
    return fresh


def share_library(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    library_id: str,
    *,
    operation: str,
    method: str,
    body: bytes | None,
) -> UpstreamResponse:
    """A library's accesses: Mistral's own sharing with its organisation's users and
    workspaces (never with another tenant: the gateway's records decide that). Listing is
    a read; a change is audited."""
    check_owned(pool, tenant, "library", [library_id])
    path = _PATHS["library"](library_id, None) + "/share"
    retry = Retry.IDEMPOTENT
    answer = client.call(operation, method, path, body, retry=retry)
    if method != "GET":
        action = "library.share" if method == "PUT" else "library.unshare"
        try:
            changes = json.loads(body or b"{}")
        except ValueError:
            changes = {}
        with pool.transaction() as conn:
            audit.record(
                conn, action, library_id, tenant_id=tenant, changes=_share_changes(changes)
            )
    return answer


def _share_changes(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        return {}
    return {
        k: request.get(k) for k in ("share_with_type", "share_with_uuid", "level") if k in request
    }


# -- batch jobs ----------------------------------------------------------------------------


def create_batch_job(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    job: BatchJobRequest,
    *,
    created_by: str | None = None,
    reservation: Reservation | None = None,
    idempotency_key: str | None = None,
) -> UpstreamResponse:
    """`POST /v1/batch/jobs`, its references checked (`pricing.check_batch_job`): the
    job's record names the key that made it (its spend is counted to it), what its
    create reserved of the token budget (settled when the job is metered) and the
    request's Idempotency-Key."""
    answer = client.call(
        "batch.jobs.create",
        "POST",
        "/v1/batch/jobs",
        json.dumps(job.body).encode(),
        retry=Retry.UNSENT,
    )
    return _recorded(
        pool,
        client,
        tenant,
        "batch_job",
        answer,
        created_by=created_by,
        reservation=reservation,
        idempotency_key=idempotency_key,
    )


def list_batch_jobs(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    query: ListQuery,
    *,
    limiter: RateLimiter | None = None,
) -> dict[str, Any]:
    """`GET /v1/batch/jobs`: the tenant's jobs (filters model, agent_id, status,
    created_after, metadata, created_by_me: made by the calling key; order_by created or
    -created). A job seen ended has its tokens charged to `limiter`'s budget buckets
    (`_job_seen`)."""
    equals: dict[str, Any] = {}
    for name in ("model", "agent_id"):
        if value := query.one(name):
            equals[name] = value
    if raw := query.one("metadata"):
        try:
            metadata = jsonsafe.loads(raw)
        except (ValueError, RecursionError):
            metadata = None
        if isinstance(metadata, dict) and metadata:
            # What PostgreSQL cannot compare is 422, never a failed query.
            jsonsafe.check_storable(metadata, ("query", "metadata"))
            equals["metadata"] = metadata
    statuses = query.many("status")
    page = read_page(
        pool,
        tenant,
        "batch_job",
        page=query.page,
        page_size=query.page_size,
        equals=equals,
        one_of=("status", statuses) if statuses else None,
        created_after=_timestamp(query.one("created_after"), "created_after"),
        created_by=_created_by(query),
        order="oldest" if query.one("order_by") == "created" else "newest",
    )
    bodies = _fresh(
        pool,
        client,
        tenant,
        "batch_job",
        page.bodies,
        lambda b: b.get("status") not in _BATCH_DONE,
        "batch.jobs.get",
        seen=lambda body: _job_seen(pool, client, tenant, body, limiter),
    )
    return {"object": "list", "data": bodies, "total": page.total}


def _created_by(query: ListQuery) -> str | None:
    """The key whose objects `created_by_me=true` keeps (None: no such filter)."""
    if not query.flag("created_by_me"):
        return None
    if query.caller_key is None:
        raise ValueError("created_by_me needs the calling key")
    return query.caller_key


def batch_job_action(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    job_id: str,
    *,
    cancel: bool,
    limiter: RateLimiter | None = None,
) -> UpstreamResponse:
    """`GET /v1/batch/jobs/{id}` or `POST .../cancel`: the job as Mistral now has it. A
    job seen ended has its tokens charged to `limiter`'s budget buckets (`_job_seen`)."""
    return _job_read(pool, client, tenant, job_id, cancel=cancel, limiter=limiter)[0]


def refresh_batch_job(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    job_id: str,
    *,
    limiter: RateLimiter | None = None,
) -> JobSeen:
    """What a get of the job does (`batch_job_action`), without a caller to answer: the
    sweep's step (`shared.resources.sweep`). Raises what the get would answer (Mistral
    failing, the job gone); `JobSeen.kept` is False when what it brought was not kept."""
    return _job_read(pool, client, tenant, job_id, cancel=False, limiter=limiter)[1]


def _job_read(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    job_id: str,
    *,
    cancel: bool,
    limiter: RateLimiter | None,
) -> tuple[UpstreamResponse, JobSeen]:
    answer = owned_call(
        pool,
        client,
        tenant,
        "batch_job",
        job_id,
        operation="batch.jobs.cancel" if cancel else "batch.jobs.get",
        method="POST" if cancel else "GET",
        suffix="/cancel" if cancel else "",
    )
    try:
        body = _read_object(answer)
    except UpstreamUnavailable:
        return answer, JobSeen(kept=False)  # relayed as Mistral gave it; nothing to keep
    return answer, _job_seen(pool, client, tenant, body, limiter)


# -- a batch job's results and spend ---------------------------------------------------------


@dataclass(frozen=True)
class JobSeen:
    """What seeing a job's body did: whether it was kept (with the files it names), whether
    it had ended, and whether this was the one time its spend was counted."""

    kept: bool
    ended: bool = False
    metered: bool = False


def _job_seen(
    pool: Pool,
    client: MistralClient,
    tenant: str,
    body: dict[str, Any],
    limiter: RateLimiter | None = None,
) -> JobSeen:
    """A job body Mistral just gave, kept in one transaction with what it brings: the
    `output_file` and `error_file` it names become the tenant's (only from here on: until
    the gateway has seen a body naming them, they are no tenant's and answer 404), and the
    first time it is seen ended its spend is counted, one usage event (`batch.jobs`, the
    tokens of every line of its output file, the key that created it), then settled in
    the tenant's token budget (`_settle_spend`). Best effort: if any step before the
    commit fails nothing is kept, the answer stands, and the next read of the job (or
    the next sweep) tries again (a list keeps asking Mistral while the stored body has
    not ended)."""
    job_id = str(body["id"])
    ended = body.get("status") in _BATCH_DONE
    named = [body.get(k) for k in ("output_file", "error_file")]
    files = [f for f in named if isinstance(f, str)]
    try:
        with pool.connection() as conn:
            state = job_state(conn, tenant, job_id, files)
        if state is None:
            return JobSeen(kept=False, ended=ended)  # deleted meanwhile
        adopted = [_file_body(client, file_id) for file_id in state.unowned_files]
        spend: tuple[Usage, str | None] | None = None
        if ended and not state.metered:
            spend = _job_usage(client, body.get("output_file"))
        with pool.transaction() as conn:
            refresh_body(conn, tenant, "batch_job", body)
            for file_body in adopted:
                adopt_file(conn, tenant, file_body, job_id)
            charged = spend is not None and claim_spend(conn, tenant, job_id)
            if spend is not None and charged:
                usage, model = spend
                agent_id = body.get("agent_id")
                job_model = body.get("model")
                conversation_store.record_usage(
                    conn,
                    conversation_store.UsageEvent(
                        owner=tenant,
                        key_id=state.key_id or "",
                        operation=BATCH_USAGE_OPERATION,
                        status=200,
                        usage=usage,
                        agent_id=agent_id if isinstance(agent_id, str) else None,
                        model=job_model if isinstance(job_model, str) else model,
                        conversation_id=None,
                    ),
                )
        if spend is not None and charged and limiter is not None:
            # After the commit, by its one winner: Redis is not in the transaction.
            _settle_spend(limiter, tenant, state.reservation, spend[0].total)
        return JobSeen(kept=True, ended=ended, metered=spend is not None and charged)
    except Exception as exc:
        log_event("resource_refresh_failed", "WARNING", kind="batch_job", error=type(exc).__name__)
        return JobSeen(kept=False, ended=ended)


def _settle_spend(
    limiter: RateLimiter, tenant: str, reservation: Reservation | None, tokens: int
) -> None:
    """A job's real tokens in the tenant's budget: its create's reservation settled against
    them, or (a job that reserved nothing: no budget then, or made before reservations)
    all of them charged now."""
    if reservation is None:
        limiter.charge(tenant, tokens)
    else:
        limiter.settle_reservation(tenant, reservation, tokens)


def _file_body(client: MistralClient, file_id: str) -> dict[str, Any]:
    """A file's body as the files list serves it (Mistral's retrieve, less `deleted`)."""
    answer = client.call("files.retrieve", "GET", _PATHS["file"](file_id, None))
    body = _read_object(answer)
    body.pop("deleted", None)
    return body


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream, one at a time (only the line being read is held)."""
    pending = bytearray()
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            yield bytes(pending)
            pending.clear()
            start = end + 1
        pending += chunk[start:]
    if pending:
        yield bytes(pending)


def _job_usage(client: MistralClient, file_id: Any) -> tuple[Usage, str | None]:
    """The usage of every line of a job's output file (each line's `response.body`: its
    tokens, OCR pages and audio seconds, as a call's are read), read from Mistral's
    download line by line, never whole, and the model the first line names; none without
    an output file."""
    if not isinstance(file_id, str):
        return Usage(), None
    total = Usage()
    model: str | None = None
    stream = client.download("files.download", _PATHS["file"](file_id, None) + "/content")
    ok = False
    try:
        for line in _lines(stream.chunks()):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            response = entry.get("response") if isinstance(entry, dict) else None
            answer = response.get("body") if isinstance(response, dict) else None
            if not isinstance(answer, dict):
                continue
            total += Usage.of_answer(answer)
            if model is None and isinstance(answer.get("model"), str):
                model = answer["model"][:_MAX_MODEL]
        ok = True
    finally:
        stream.close(ok)
    return total, model

"""Agents: Mistral's agents, mirrored in the gateway's database with their owner.

Every agent lives in Mistral under the gateway's one API key, so Mistral cannot
tell tenants apart. The `agents` table is therefore the authority on who owns
what: lists are answered from it, scoped to the caller's tenant, and an agent id
that is not one of the caller's live rows answers 404 before anything is sent
upstream. Rows keep Mistral's last answer (`body`), served back as it is, so
fields the gateway does not know survive.

Mistral and the database must never disagree about which agents exist. Each
write first records that it is in progress (`shared.db.in_progress`: a short
transaction leaving a row under the agent's, or for a create the name's, key),
calls Mistral holding no connection and no lock, then finishes in one short
transaction (the row, the audit row, the record's removal). Two gateway writes to
the same agent or name never interleave: one that waits more than half a second
for the other answers 409 `agent_busy` with Retry-After.

    create   record name -> Mistral create -> insert row + audit, end record
    update   record agent -> owned? -> Mistral update -> store body + audit, end record
    switch   record agent -> owned? -> Mistral switch version -> store body + audit, ...
    delete   record agent -> owned? -> Mistral delete -> mark deleted + audit, ...

What happens when something fails:

- Mistral refuses (4xx, relayed verbatim) or is not reached: nothing is written.
- Mistral fails in a way that leaves it unknown whether the change happened
  (5xx after sending, a reset or timeout, an unreadable answer): the gateway
  looks and puts Mistral back as the database has it before answering the
  error. A create deletes the agents of that name that Mistral made in the
  meantime and the database does not know (the name's record makes those ours); an
  update or switch sets the current version back to the stored one; a delete
  that Mistral did carry out (it now answers 404) is recorded as done.
- The database write fails after Mistral succeeded: the write is retried in new
  transactions (it is an idempotent upsert); if it still fails, the change is
  undone in Mistral (a created agent is deleted; an update or switch is undone
  by switching back to the stored version) and the caller gets 503, or 409
  when the failure was another agent of the same name committed meanwhile. A
  delete cannot be undone: the row stays until the next delete of that agent,
  which Mistral answers 404 and which therefore completes it.

If the undo itself cannot reach Mistral, the gateway logs `agent_out_of_sync`
at ERROR with the agent's id, for an operator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from shared import cursors
from shared.db import DATABASE_ERRORS, Conn, InProgress, Pool, in_progress
from shared.errors import (
    BadRequest,
    Conflict,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UniqueViolation,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
    field_error,
)
from shared.jsonsafe import check_storable
from shared.mistral import MistralClient, Retry, UpstreamResponse
from shared.observability import log_event
from shared.query import query_bool, query_integer
from shared.reads import MISTRAL_PAGE_SIZE_CLAMP
from shared.resources import check_owned, library_ids_in_tools
from shared.tenancy import audit

__all__ = [
    "AgentFilters",
    "create_agent",
    "delete_agent",
    "get_agent",
    "list_agent_pages",
    "list_agents",
    "parse_create",
    "parse_filters",
    "parse_update",
    "relay",
    "switch_version",
    "update_agent",
]

# Page numbers past this would overflow the OFFSET; the history routes use the same cap.
MAX_PAGE = 1_000_000
# Database write retries after Mistral succeeded, and the pause before each.
_DB_RETRY_PAUSES_S = (0.05, 0.25)
# Mistral's clock may run ahead of or behind ours: an agent of the name that Mistral says
# was made this long before the create started may still be ours.
_CLOCK_SKEW = timedelta(seconds=120)
# Pages of Mistral's list read when looking for what an unanswered create left behind.
_REPAIR_PAGES = 10
# Mistral failed without saying whether the change happened.
_AMBIGUOUS = (UpstreamUnavailable, UpstreamTimeout)

T = TypeVar("T")
Query = Mapping[str, Any]


class _Unreadable(UpstreamUnavailable):
    """Mistral answered 2xx with a body that is not an agent: the change may have happened."""

    def __init__(self) -> None:
        super().__init__("Mistral sent an answer the gateway could not read")


# -- request parsing ---------------------------------------------------------------------------


def _string_field(body: Mapping[str, Any], name: str, *, required: bool) -> list[dict[str, Any]]:
    if name not in body or (body[name] is None and not required):
        return [field_error(("body", name), "Field required", "missing")] if required else []
    value = body[name]
    if not isinstance(value, str):
        return [field_error(("body", name), "Input should be a valid string", "string_type")]
    if not value.strip():
        return [field_error(("body", name), "String should not be blank", "string_blank")]
    return []


def _handoffs_field(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = body.get("handoffs")
    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return []
    msg = "Input should be a list of agent ids"
    return [field_error(("body", "handoffs"), msg, "list_type")]


def _require_handoffs(conn: Conn, owner: str, request: Mapping[str, Any]) -> None:
    """Every agent named in `handoffs` (and library in a `document_library` tool) must be
    the caller's: another tenant's is refused
    exactly as a missing one is (404), before anything reaches Mistral, which cannot
    tell tenants apart behind the gateway's one API key."""
    for agent_id in request.get("handoffs") or ():
        _owned(conn, owner, agent_id)
    # So must every library its `document_library` tools name (shared.resources).
    check_owned(conn, owner, "library", library_ids_in_tools(request.get("tools")))


def body_rules() -> dict[str, dict[str, Any]]:
    """Operation -> what `parse_create` and `parse_update` refuse beyond Mistral's schema, as
    JSON Schema (the OpenAPI document combines it with the SDK's request model)."""
    from shared.errors import NOT_BLANK

    name = {"type": "string", "pattern": NOT_BLANK, "description": "Not blank."}
    handoffs = {"type": ["array", "null"], "items": {"type": "string"}}
    return {
        "agents.create": {
            "type": "object",
            "properties": {"model": name, "name": name, "handoffs": handoffs},
            "required": ["model", "name"],
        },
        "agents.update": {
            "type": "object",
            "properties": {
                "model": {**name, "type": ["string", "null"]},
                "name": {**name, "type": ["string", "null"]},
                "handoffs": handoffs,
            },
        },
    }


def parse_create(body: dict[str, Any]) -> dict[str, Any]:
    """Check the fields the gateway itself relies on (name, model, handoffs); Mistral checks
    the rest."""
    problems = _string_field(body, "model", required=True)
    problems += _string_field(body, "name", required=True)
    problems += _handoffs_field(body)
    if problems:
        raise ValidationFailed(problems)
    return body


def parse_update(body: dict[str, Any]) -> dict[str, Any]:
    """An update may leave out or null any field; a given name or model must be a string."""
    problems = _string_field(body, "model", required=False)
    problems += _string_field(body, "name", required=False)
    problems += _handoffs_field(body)
    if problems:
        raise ValidationFailed(problems)
    return body


def _query_bool(query: Query, name: str) -> bool | None:
    raw = query.get(name)
    return query_bool(None if raw is None else str(raw), name)


@dataclass(frozen=True)
class AgentFilters:
    """The list filters Mistral's agent lists take, plus paging."""

    page: int = 0
    page_size: int = 20
    page_token: str | None = None
    name: str | None = None
    search: str | None = None
    agent_id: str | None = None
    deployment_chat: bool | None = None
    sources: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None


def parse_filters(query: Query, sources: list[str]) -> AgentFilters:
    """The filters from a query string (`sources` is the repeated parameter's values).

    A `metadata` that is not a JSON object means no filter: the SDK sends the JSON
    of its UNSET sentinel whenever the caller gives none (wire contract 1.3).
    """
    metadata: Any = None
    raw_metadata = query.get("metadata")
    if raw_metadata is not None:
        try:
            metadata = json.loads(raw_metadata)
        except (ValueError, RecursionError):  # deep nesting: Python's parser recurses
            metadata = None
        if isinstance(metadata, dict):
            # A filter PostgreSQL cannot take (NUL, lone surrogate) is 422, not a 500.
            check_storable(metadata, ("query", "metadata"))
    return AgentFilters(
        page=query_integer(query.get("page"), "page", default=0, minimum=0, maximum=MAX_PAGE),
        # Any size is served, as Mistral serves it (see MISTRAL_PAGE_SIZE_CLAMP).
        page_size=query_integer(
            query.get("page_size"),
            "page_size",
            default=20,
            minimum=1,
            maximum=MISTRAL_PAGE_SIZE_CLAMP,
            clamp=True,
        ),
        page_token=query.get("page_token") or None,
        name=query.get("name"),
        search=query.get("search"),
        agent_id=query.get("id"),
        deployment_chat=_query_bool(query, "deployment_chat"),
        sources=tuple(sources),
        metadata=metadata if isinstance(metadata, dict) else None,
    )


# -- reading -----------------------------------------------------------------------------------

# Every filter is applied in SQL; a parameter that is NULL means "no filter".
_LIST_SQL = """
SELECT id, body, created_at FROM agents
WHERE owner_id = :owner AND status = 'active'
  AND (CAST(:name AS text) IS NULL OR name = :name)
  AND (CAST(:agent_id AS text) IS NULL OR id = :agent_id)
  AND (CAST(:search AS text) IS NULL
       OR strpos(lower(name || ' ' || coalesce(description, '') || ' ' || id),
                 lower(:search)) > 0)
  AND (CAST(:deployment_chat AS boolean) IS NULL
       OR body -> 'deployment_chat' = to_jsonb(CAST(:deployment_chat AS boolean)))
  AND (CAST(:sources AS jsonb) IS NULL
       OR body ->> 'source' IN (SELECT jsonb_array_elements_text(CAST(:sources AS jsonb))))
  AND (CAST(:metadata AS jsonb) IS NULL
       OR (jsonb_typeof(metadata) = 'object' AND NOT EXISTS (
           SELECT 1 FROM jsonb_each(CAST(:metadata AS jsonb)) AS wanted (key, value)
           WHERE metadata -> wanted.key IS DISTINCT FROM wanted.value)))
  AND (CAST(:after_created AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(:after_created AS timestamptz), CAST(:after_id AS text)))
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset
"""


def _filter_params(filters: AgentFilters) -> dict[str, Any]:
    return {
        "name": filters.name,
        "agent_id": filters.agent_id,
        "search": filters.search,
        "deployment_chat": filters.deployment_chat,
        "sources": json.dumps(list(filters.sources)) if filters.sources else None,
        "metadata": json.dumps(filters.metadata) if filters.metadata else None,
    }


def list_agents(pool: Pool, owner: str, filters: AgentFilters) -> list[dict[str, Any]]:
    """`GET /v1/agents`: one page (by number) of the tenant's agents, newest first."""
    with pool.connection() as conn:
        rows = conn.all(
            _LIST_SQL,
            owner=owner,
            **_filter_params(filters),
            after_created=None,
            after_id=None,
            limit=filters.page_size,
            offset=filters.page * filters.page_size,
        )
    return [row["body"] for row in rows]


def _page_position(token: str | None) -> tuple[cursors.CursorValue | None, ...]:
    """Where a page token says the last page ended; 400 for a token the gateway did not
    hand out, as Mistral answers one it did not."""
    if not token:
        return (None, None)
    try:
        return cursors.decode(token, "agents", (datetime, str), param="page_token")
    except ValidationFailed:
        raise BadRequest(f"Invalid page_token {token!r}", code="invalid_page_token") from None


def list_agent_pages(pool: Pool, owner: str, filters: AgentFilters) -> dict[str, Any]:
    """`GET /v1/agents/pages`: a keyset page; `next_page_token` is null on the last page."""
    after_created, after_id = _page_position(filters.page_token)
    with pool.connection() as conn:
        rows = conn.all(
            _LIST_SQL,
            owner=owner,
            **_filter_params(filters),
            after_created=after_created,
            after_id=after_id,
            # One more than asked tells whether another page follows.
            limit=filters.page_size + 1,
            offset=0,
        )
    page = rows[: filters.page_size]
    token = None
    if len(rows) > filters.page_size:
        token = cursors.encode("agents", page[-1]["created_at"], page[-1]["id"])
    return {"object": "list", "data": [row["body"] for row in page], "next_page_token": token}


def _busy() -> Conflict:
    return Conflict(
        "another change to this agent is in progress; try again",
        headers={"Retry-After": "1"},
        code="agent_busy",
    )


def _in_progress(
    pool: Pool, key: str, operation: str, request_id: str | None
) -> AbstractContextManager[InProgress]:
    """The write's in-progress record (`shared.db.in_progress`); 409 `agent_busy` if taken."""
    return in_progress(pool, key, operation, _busy, request_id=request_id)


def _agent_key(owner: str, agent_id: str) -> str:
    # The owner is part of the key: another tenant's write to this id is a 404, not a 409.
    return f"agent:{owner}:{agent_id}"


def _owned(conn: Conn, owner: str, agent_id: str) -> dict[str, Any]:
    """The caller's live agent row, or 404 (another tenant's agent is simply not found)."""
    sql = (
        "SELECT id, name, version, body FROM agents"
        " WHERE id = :id AND owner_id = :owner AND status = 'active'"
    )
    row = conn.one(sql, id=agent_id, owner=owner)
    if row is None:
        raise NotFound.of("Agent", agent_id)
    return row


def _agent_path(agent_id: str, suffix: str = "") -> str:
    return f"/v1/agents/{quote(agent_id, safe='')}{suffix}"


def get_agent(
    pool: Pool, client: MistralClient, owner: str, agent_id: str, agent_version: str | None
) -> dict[str, Any] | UpstreamResponse:
    """The stored agent; a specific version or alias (`agent_version`) is asked of Mistral."""
    with pool.connection() as conn:
        row = _owned(conn, owner, agent_id)
    if agent_version is None:
        body: dict[str, Any] = row["body"]
        return body
    query = "?" + urlencode({"agent_version": agent_version})
    return client.call("agents.get", "GET", _agent_path(agent_id) + query, retry=Retry.IDEMPOTENT)


def relay(
    pool: Pool,
    client: MistralClient,
    owner: str,
    agent_id: str,
    *,
    operation: str,
    method: str,
    suffix: str,
    query_string: str = "",
) -> UpstreamResponse:
    """Versions and aliases: Mistral's answer as it is, once the agent is known to be the
    caller's. They change nothing the database holds, so there is nothing to keep in step."""
    with pool.connection() as conn:
        _owned(conn, owner, agent_id)
    path = _agent_path(agent_id, suffix) + (f"?{query_string}" if query_string else "")
    # Reading, setting an alias (a PUT) and deleting one are all safe to send twice.
    answer = client.call(operation, method, path, retry=Retry.IDEMPOTENT)
    action = _ALIAS_ACTIONS.get(operation)
    if action is not None and answer.status < 400:
        # Mistral holds the alias, not the database: the row records that it was changed.
        with pool.transaction() as conn:
            audit.record(conn, action, agent_id, tenant_id=owner, changes={"query": query_string})
    return answer


_ALIAS_ACTIONS = {
    "agents.create_alias": "agent.alias.create",
    "agents.delete_alias": "agent.alias.delete",
}


# -- writing -----------------------------------------------------------------------------------


def _read_agent(answer: UpstreamResponse) -> dict[str, Any]:
    try:
        agent = answer.json()
    except ValueError:
        raise _Unreadable() from None
    if not isinstance(agent, dict) or not isinstance(agent.get("id"), str):
        raise _Unreadable()
    if not isinstance(agent.get("name"), str) or not isinstance(agent.get("model"), str):
        raise _Unreadable()
    return agent


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _store(conn: Conn, owner: str, agent: Mapping[str, Any]) -> None:
    """Insert or refresh the row from Mistral's answer; safe to repeat."""
    version = agent.get("version")
    conn.run(
        "INSERT INTO agents (id, owner_id, name, description, model, instructions, version,"
        " tools, completion_args, metadata, body, status, created_at, updated_at)"
        " VALUES (:id, :owner, :name, :description, :model, :instructions, :version,"
        " CAST(:tools AS jsonb), CAST(:completion_args AS jsonb), CAST(:metadata AS jsonb),"
        " CAST(:body AS jsonb), 'active',"
        " COALESCE(CAST(:created_at AS timestamptz), now()),"
        " COALESCE(CAST(:updated_at AS timestamptz), now()))"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
        " description = EXCLUDED.description, model = EXCLUDED.model,"
        " instructions = EXCLUDED.instructions, version = EXCLUDED.version,"
        " tools = EXCLUDED.tools, completion_args = EXCLUDED.completion_args,"
        " metadata = EXCLUDED.metadata, body = EXCLUDED.body, status = 'active',"
        " updated_at = EXCLUDED.updated_at"
        # Never another tenant's row, whatever Mistral answers.
        " WHERE agents.owner_id = EXCLUDED.owner_id",
        id=agent["id"],
        owner=owner,
        name=agent["name"],
        description=_text_or_none(agent.get("description")),
        model=agent["model"],
        instructions=_text_or_none(agent.get("instructions")),
        version=version if isinstance(version, int) and not isinstance(version, bool) else 0,
        tools=json.dumps(agent.get("tools") or []),
        completion_args=json.dumps(agent.get("completion_args") or {}),
        metadata=_json_or_none(agent.get("metadata")),
        body=json.dumps(agent),
        created_at=_text_or_none(agent.get("created_at")),
        updated_at=_text_or_none(agent.get("updated_at")),
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _out_of_sync(
    agent_id: str | None, owner: str, action: str, exc: BaseException, name: str | None = None
) -> None:
    """Mistral and the database may disagree and the gateway could not fix it: tell an operator."""
    log_event(
        "agent_out_of_sync",
        "ERROR",
        agent_id=agent_id,
        name=name,
        owner=owner,
        action=action,
        error=type(exc).__name__,
    )


def _store_audited(conn: Conn, owner: str, agent: Mapping[str, Any], action: str) -> None:
    """Store Mistral's agent and the change's audit row, in the one transaction."""
    _store(conn, owner, agent)
    changes = {
        "name": agent.get("name"),
        "model": agent.get("model"),
        "version": agent.get("version"),
    }
    audit.record(conn, action, str(agent["id"]), tenant_id=owner, changes=changes)


def _retry_write(pool: Pool, write: Callable[[Conn], T]) -> T:
    """Run `write` in new transactions until one commits; raise the last failure."""
    last: BaseException | None = None
    for pause in _DB_RETRY_PAUSES_S:
        time.sleep(pause)
        try:
            with pool.transaction() as conn:
                return write(conn)
        except UniqueViolation:
            raise
        except Exception as exc:
            last = exc
    assert last is not None
    raise last


def _finish(
    conn: Conn, owner: str, agent: Mapping[str, Any], action: str, record: InProgress
) -> None:
    """The write's last transaction: the row, its audit row, the in-progress record's end."""
    _store_audited(conn, owner, agent, action)
    record.finish(conn)


def _failed_after_upstream(
    pool: Pool,
    owner: str,
    agent: Mapping[str, Any],
    exc: Exception,
    undo: Callable[[], None],
    action: str,
    record: InProgress,
) -> dict[str, Any]:
    """The database write failed after Mistral made the change: retry it, else undo upstream."""
    if not isinstance(exc, UniqueViolation):
        try:
            _retry_write(pool, lambda conn: _finish(conn, owner, agent, action, record))
            return dict(agent)
        except Exception as again:
            exc = again
    undo()
    if isinstance(exc, UniqueViolation):
        raise Conflict("the agent's record conflicts with another; try again") from None
    if isinstance(exc, (GatewayError, OSError, *DATABASE_ERRORS)):
        raise ServiceUnavailable(
            "the gateway could not record the change, so it was undone; try again"
        ) from exc
    raise exc


def _delete_upstream(client: MistralClient, agent_id: str) -> bool:
    """Delete in Mistral; True when it is gone (404 counts: it was already)."""
    try:
        client.call("agents.delete", "DELETE", _agent_path(agent_id), retry=Retry.IDEMPOTENT)
    except UpstreamRejected as exc:
        if exc.status != 404:
            raise
    return True


def _undo_create(client: MistralClient, owner: str, agent_id: str) -> None:
    try:
        _delete_upstream(client, agent_id)
    except GatewayError as exc:
        _out_of_sync(agent_id, owner, "undo_create", exc)


def _remove_strays(
    pool: Pool, client: MistralClient, owner: str, name: str, since: datetime
) -> None:
    """After a create Mistral may or may not have carried out: delete what it made.

    Runs under the name's in-progress record, so an agent of this name that Mistral made
    since the create started and that the database does not know can only be this create's.
    """
    try:
        token: str | None = None
        for _ in range(_REPAIR_PAGES):
            params = {"name": name, "page_size": 100, **({"page_token": token} if token else {})}
            page = client.call(
                "agents.list_pages", "GET", "/v1/agents/pages?" + urlencode(params)
            ).json()
            for agent in page.get("data") or []:
                if _made_since(agent, name, since) and not _known(pool, agent["id"]):
                    _delete_upstream(client, agent["id"])
            token = page.get("next_page_token")
            if not token:
                break
    except (GatewayError, ValueError, AttributeError, TypeError) as exc:
        _out_of_sync(None, owner, "remove_strays", exc, name=name)


def _made_since(agent: Any, name: str, since: datetime) -> bool:
    if not isinstance(agent, dict) or agent.get("name") != name:
        return False
    try:
        created = datetime.fromisoformat(str(agent.get("created_at")))
    except ValueError:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return isinstance(agent.get("id"), str) and created >= since - _CLOCK_SKEW


def _known(pool: Pool, agent_id: str) -> bool:
    with pool.connection() as conn:
        return conn.one("SELECT 1 AS known FROM agents WHERE id = :id", id=agent_id) is not None


def create_agent(
    pool: Pool,
    client: MistralClient,
    owner: str,
    request: Mapping[str, Any],
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """`POST /v1/agents`: made in Mistral, recorded with its owner, or neither."""
    name = str(request["name"])
    payload = json.dumps(request).encode()
    with pool.connection() as conn:
        _require_handoffs(conn, owner, request)
    # Across tenants: while it is held, any agent of this name that Mistral makes is ours.
    with _in_progress(pool, "agent-name:" + name, "agents.create", request_id) as record:
        started = datetime.now(UTC)
        try:
            answer = client.call("agents.create", "POST", "/v1/agents", payload, retry=Retry.UNSENT)
            agent = _read_agent(answer)
        except _AMBIGUOUS:
            _remove_strays(pool, client, owner, name, started)
            raise
        agent_id = agent["id"]
        try:
            with pool.transaction() as conn:
                _finish(conn, owner, agent, "agent.create", record)
        except Exception as exc:
            return _failed_after_upstream(
                pool,
                owner,
                agent,
                exc,
                lambda: _undo_create(client, owner, agent_id),
                "agent.create",
                record,
            )
        return agent


def _restore_version(
    client: MistralClient, owner: str, agent_id: str, version: int
) -> dict[str, Any] | None:
    """Make `version` Mistral's current version again; Mistral's agent as it now is."""
    try:
        path = _agent_path(agent_id)
        current = _read_agent(client.call("agents.get", "GET", path))
        if current.get("version") == version:
            return current
        query = "?" + urlencode({"version": version})
        answer = client.call(
            "agents.update_version", "PATCH", _agent_path(agent_id, "/version") + query
        )
        return _read_agent(answer)
    except GatewayError as exc:
        _out_of_sync(agent_id, owner, "restore_version", exc)
        return None


def _change(
    pool: Pool,
    client: MistralClient,
    owner: str,
    agent_id: str,
    send: Callable[[], UpstreamResponse],
    action: str = "agent.update",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An update or a version switch: Mistral first, then the row, under the agent's
    in-progress record (no connection is held while Mistral works)."""
    with _in_progress(pool, _agent_key(owner, agent_id), action, request_id) as record:
        with pool.connection() as conn:
            previous = int(_owned(conn, owner, agent_id)["version"])
        try:
            agent = _read_agent(send())
        except _AMBIGUOUS:
            restored = _restore_version(client, owner, agent_id, previous)
            if restored is not None:
                with pool.transaction() as conn:
                    _store(conn, owner, restored)
            raise
        try:
            with pool.transaction() as conn:
                _finish(conn, owner, agent, action, record)
        except Exception as exc:

            def undo() -> None:
                restored = _restore_version(client, owner, agent_id, previous)
                if restored is not None:
                    # Mistral now lists one more version; keep that too if the database lets us.
                    try:
                        with pool.transaction() as conn:
                            _store(conn, owner, restored)
                    except Exception as ignored:
                        _out_of_sync(agent_id, owner, "store_restored", ignored)

            return _failed_after_upstream(pool, owner, agent, exc, undo, action, record)
        return agent


def update_agent(
    pool: Pool,
    client: MistralClient,
    owner: str,
    agent_id: str,
    request: Mapping[str, Any],
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """`PATCH /v1/agents/{id}`: a new version in Mistral, then the stored row."""
    payload = json.dumps(request).encode()
    with pool.connection() as conn:
        _require_handoffs(conn, owner, request)

    def send() -> UpstreamResponse:
        return client.call(
            "agents.update", "PATCH", _agent_path(agent_id), payload, retry=Retry.UNSENT
        )

    return _change(pool, client, owner, agent_id, send, request_id=request_id)


def switch_version(
    pool: Pool,
    client: MistralClient,
    owner: str,
    agent_id: str,
    query_string: str,
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """`PATCH /v1/agents/{id}/version?version=N`: Mistral's current version, then the row."""
    path = _agent_path(agent_id, "/version") + (f"?{query_string}" if query_string else "")

    def send() -> UpstreamResponse:
        # Making a version current twice is the same as once: safe to resend.
        return client.call("agents.update_version", "PATCH", path, retry=Retry.IDEMPOTENT)

    return _change(pool, client, owner, agent_id, send, "agent.version", request_id)


def _mark_deleted(conn: Conn, owner: str, agent_id: str) -> None:
    conn.run("UPDATE agents SET status = 'deleted', updated_at = now() WHERE id = :id", id=agent_id)
    audit.record(conn, "agent.delete", agent_id, tenant_id=owner)


def _gone_upstream(client: MistralClient, agent_id: str) -> bool:
    """True if Mistral answers 404 for the agent (a failed delete may have happened)."""
    try:
        client.call("agents.get", "GET", _agent_path(agent_id))
    except UpstreamRejected as exc:
        return exc.status == 404
    except GatewayError:
        return False
    return False


def delete_agent(
    pool: Pool,
    client: MistralClient,
    owner: str,
    agent_id: str,
    *,
    request_id: str | None = None,
) -> None:
    """`DELETE /v1/agents/{id}`: gone from Mistral, then marked deleted (its name is free)."""
    with _in_progress(pool, _agent_key(owner, agent_id), "agent.delete", request_id) as record:
        with pool.connection() as conn:
            _owned(conn, owner, agent_id)
        try:
            _delete_upstream(client, agent_id)
        except _AMBIGUOUS:
            if not _gone_upstream(client, agent_id):
                raise

        def finish(conn: Conn) -> None:
            _mark_deleted(conn, owner, agent_id)
            record.finish(conn)

        try:
            with pool.transaction() as conn:
                finish(conn)
        except Exception as exc:
            try:
                _retry_write(pool, finish)
            except Exception as again:
                # Mistral answers 404 from now on, so the next delete completes this one.
                _out_of_sync(agent_id, owner, "mark_deleted", again)
                raise ServiceUnavailable(
                    "the agent was deleted in Mistral but the gateway could not record it;"
                    " send the delete again"
                ) from exc

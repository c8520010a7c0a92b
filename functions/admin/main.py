"""The admin function, the control plane: parse, call `shared`, map the result.

Mistral's routes (`/v1/agents...`, `DELETE /v1/conversations/{id}`, `/v1/models...`)
answer in Mistral's shapes, deletes with exactly 204 and no body. The gateway's own routes
are documented where their logic lives: `shared.tenancy.keyadmin` (keys),
`shared.tenancy.usage` (usage), `shared.tenancy.tenants` (tenants), `shared.tenancy.audit`
(the audit log), `shared.conversations.archive_delete` (archive, unarchive) and
`shared.tenancy.whoami` (the caller). The web console (`console/`: static files, open
to all, holding no data) is served here, so it ships in this function's bundle.
Authentication, roles and rate limits are applied by `FunctionApp` before a handler runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flask
import functions_framework

from shared import agents, model_catalog, observability, resources
from shared.conversations import archive_delete
from shared.errors import Conflict, NotFound
from shared.http.health import health
from shared.http.web import Context, FunctionApp, Handler, json_response
from shared.mistral import UpstreamResponse
from shared.tenancy import audit, keyadmin, tenants, usage, whoami
from shared.tenancy.auth import crosses_tenants, tenant_scope


def _no_content() -> flask.Response:
    # The SDK accepts a delete only as 204; a 204 carries no body and no content type.
    response = flask.Response(status=204)
    del response.headers["Content-Type"]
    return response


def _relayed(answer: UpstreamResponse) -> flask.Response:
    """Mistral's answer as it came (a 204 stays bodiless)."""
    if answer.status == 204:
        return _no_content()
    content_type = answer.headers.get("content-type", "application/json")
    return flask.Response(answer.body, status=answer.status, content_type=content_type)


def _query_string(ctx: Context) -> str:
    return ctx.request.query_string.decode("latin-1")


def _agent_id(ctx: Context) -> str:
    agent_id = ctx.params["agent_id"]
    ctx.access.agent_id = agent_id
    return agent_id


# -- conversations -----------------------------------------------------------------------------


def delete_conversation(ctx: Context) -> flask.Response:
    conversation_id = ctx.params["conversation_id"]
    ctx.access.conversation_id = conversation_id
    archive_delete.delete_conversation(
        ctx.container.pool,
        ctx.container.mistral,
        ctx.owner,
        conversation_id,
        request_id=ctx.request_id,
    )
    return _no_content()


def _archiver(archived: bool) -> Handler:
    def handler(ctx: Context) -> flask.Response:
        conversation_id = ctx.params["conversation_id"]
        ctx.access.conversation_id = conversation_id
        return json_response(
            archive_delete.set_archived(ctx.container.pool, ctx.owner, conversation_id, archived)
        )

    return handler


# -- agents ------------------------------------------------------------------------------------


def _filters(ctx: Context) -> agents.AgentFilters:
    return agents.parse_filters(ctx.request.args, ctx.request.args.getlist("sources"))


def create_agent(ctx: Context) -> flask.Response:
    request = agents.parse_create(ctx.json_body())
    agent = agents.create_agent(
        ctx.container.pool, ctx.container.mistral, ctx.owner, request, request_id=ctx.request_id
    )
    ctx.access.agent_id = agent["id"]
    return json_response(agent)


def list_agents(ctx: Context) -> flask.Response:
    return json_response(agents.list_agents(ctx.container.pool, ctx.owner, _filters(ctx)))


def list_agent_pages(ctx: Context) -> flask.Response:
    return json_response(agents.list_agent_pages(ctx.container.pool, ctx.owner, _filters(ctx)))


def get_agent(ctx: Context) -> flask.Response:
    found = agents.get_agent(
        ctx.container.pool,
        ctx.container.mistral,
        ctx.owner,
        _agent_id(ctx),
        ctx.query("agent_version"),
    )
    return _relayed(found) if isinstance(found, UpstreamResponse) else json_response(found)


def update_agent(ctx: Context) -> flask.Response:
    agent_id = _agent_id(ctx)
    request = agents.parse_update(ctx.json_body())
    return json_response(
        agents.update_agent(
            ctx.container.pool,
            ctx.container.mistral,
            ctx.owner,
            agent_id,
            request,
            request_id=ctx.request_id,
        )
    )


def delete_agent(ctx: Context) -> flask.Response:
    agents.delete_agent(
        ctx.container.pool,
        ctx.container.mistral,
        ctx.owner,
        _agent_id(ctx),
        request_id=ctx.request_id,
    )
    return _no_content()


def switch_version(ctx: Context) -> flask.Response:
    return json_response(
        agents.switch_version(
            ctx.container.pool,
            ctx.container.mistral,
            ctx.owner,
            _agent_id(ctx),
            _query_string(ctx),
            request_id=ctx.request_id,
        )
    )


def _relay(method: str, suffix: str) -> Handler:
    """Versions and aliases: Mistral answers, once the agent is known to be the caller's."""

    def handler(ctx: Context) -> flask.Response:
        version = ctx.params.get("version")
        answer = agents.relay(
            ctx.container.pool,
            ctx.container.mistral,
            ctx.owner,
            _agent_id(ctx),
            operation=ctx.route.operation,
            method=method,
            suffix=suffix.format(version=quote(version or "", safe="")),
            query_string=_query_string(ctx),
        )
        return _relayed(answer)

    return handler


# -- models: shared read-only, filtered by the key's allowed_models ----------------------------


def list_models(ctx: Context) -> flask.Response:
    found = model_catalog.list_models(ctx.container.mistral, ctx.caller, _query_string(ctx))
    return _relayed(found) if isinstance(found, UpstreamResponse) else json_response(found)


def retrieve_model(ctx: Context) -> flask.Response:
    ctx.access.model = ctx.params["model_id"]
    return _relayed(
        model_catalog.retrieve_model(ctx.container.mistral, ctx.caller, ctx.params["model_id"])
    )


# -- tenant-owned Mistral resources: files, libraries, documents, accesses, batch jobs -------


def _list_query(ctx: Context) -> resources.ListQuery:
    args = ctx.request.args.to_dict(flat=False)
    return resources.parse_list_query(args, caller_key=ctx.caller.key_id)


def _created_once(
    ctx: Context,
    operation: str,
    body: dict[str, Any],
    create: Callable[[str | None], UpstreamResponse],
) -> flask.Response:
    """A create under the request's Idempotency-Key, if it has one (a repeat gets the
    first answer, marked `Idempotent-Replayed: true`); `create` is given the key, which
    the object's record keeps."""
    key = ctx.request.headers.get("Idempotency-Key")
    if key is None:
        return _relayed(create(None))
    made = resources.create_once(
        ctx.container.idempotency,
        ctx.container.pool,
        ctx.owner,
        key,
        operation,
        ctx.request.path,
        body,
        lambda: create(key),
    )
    return _made(ctx, made)


def _made(ctx: Context, made: resources.Created) -> flask.Response:
    """A create's answer; a replayed one marked `Idempotent-Replayed: true`."""
    response = flask.Response(made.body, status=made.status, content_type=made.content_type)
    if made.replayed:
        ctx.access.idempotent_replay = True
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _upload(ctx: Context) -> resources.Upload:
    content_type, length, chunks = ctx.multipart_body()
    return resources.Upload(content_type, length, chunks)


def _raw_body(ctx: Context) -> bytes | None:
    """A JSON body relayed as sent (Mistral checks its fields), once it is known to be JSON."""
    if not (ctx.request.content_length or ctx.request.mimetype):
        return None
    ctx.json_body()
    return ctx.raw_body


def _uploaded_once(
    ctx: Context,
    operation: str,
    upload: resources.Upload,
    create: Callable[[resources.Upload], UpstreamResponse],
) -> flask.Response:
    """An upload under the request's Idempotency-Key, if it has one (its body hashed as it
    streams, `shared.resources.idempotent`)."""
    key = ctx.request.headers.get("Idempotency-Key")
    if key is None:
        return _relayed(create(upload))
    made = resources.upload_once(
        ctx.container.idempotency, ctx.owner, key, operation, ctx.request.path, upload, create
    )
    return _made(ctx, made)


def upload_file(ctx: Context) -> flask.Response:
    pool, client = ctx.container.pool, ctx.container.mistral
    made_by = ctx.caller.key_id
    return _uploaded_once(
        ctx,
        "files.upload",
        _upload(ctx),
        lambda upload: resources.upload_file(pool, client, ctx.owner, upload, created_by=made_by),
    )


def list_files(ctx: Context) -> flask.Response:
    return json_response(resources.list_files(ctx.container.pool, ctx.owner, _list_query(ctx)))


def download_file(ctx: Context) -> flask.Response:
    stream = resources.download_file(
        ctx.container.pool, ctx.container.mistral, ctx.owner, ctx.params["file_id"]
    )
    headers = {
        name: value
        for name in ("Content-Length", "Content-Disposition")
        if (value := stream.response.headers.get(name)) is not None
    }
    content_type = stream.response.headers.get("content-type", "application/octet-stream")

    def relay() -> Iterator[bytes]:
        ok = False
        try:
            yield from stream.chunks()
            ok = True
        finally:
            stream.close(ok)

    # Deferred: the access line is written once the last byte is sent (and nothing before
    # it reads the body whole to measure it).
    return flask.Response(
        observability.deferred_stream(ctx, relay()), content_type=content_type, headers=headers
    )


def create_library(ctx: Context) -> flask.Response:
    pool, client, body = ctx.container.pool, ctx.container.mistral, ctx.json_body()
    made_by = ctx.caller.key_id
    return _created_once(
        ctx,
        "libraries.create",
        body,
        lambda key: resources.create_library(
            pool, client, ctx.owner, body, created_by=made_by, idempotency_key=key
        ),
    )


def list_libraries(ctx: Context) -> flask.Response:
    return json_response(resources.list_libraries(ctx.container.pool, ctx.owner, _list_query(ctx)))


def upload_document(ctx: Context) -> flask.Response:
    pool, client = ctx.container.pool, ctx.container.mistral
    library_id, made_by = ctx.params["library_id"], ctx.caller.key_id
    return _uploaded_once(
        ctx,
        "libraries.documents.upload",
        _upload(ctx),
        lambda upload: resources.upload_document(
            pool, client, ctx.owner, library_id, upload, created_by=made_by
        ),
    )


def list_documents(ctx: Context) -> flask.Response:
    pool, client = ctx.container.pool, ctx.container.mistral
    library_id = ctx.params["library_id"]
    query = _list_query(ctx)
    return json_response(resources.list_documents(pool, client, ctx.owner, library_id, query))


def create_batch_job(ctx: Context) -> flask.Response:
    """A job spends tokens outside every per-call budget: with a day token budget on, its
    create reserves what its lines may cost (`resources.batch_job_estimate`, reading its
    input files from Mistral), refused as a pass-through call is (429
    `token_budget_exceeded`) when that does not fit. Of the day budget only: a job runs
    for hours, so the minute budget would refuse any job larger than a minute's tokens.
    The reservation is settled when the job is metered; a create Mistral refuses, one its
    Idempotency-Key refuses and a repeat answered with the key's first job give it back
    at once."""
    pool, client, container = ctx.container.pool, ctx.container.mistral, ctx.container
    body = ctx.json_body()
    job = resources.check_batch_job(pool, ctx.owner, body)
    # A key over its request rate is refused before the input files are read to price it.
    decision = ctx.check_limits(
        lambda: resources.batch_job_estimate(client, container.settings, job),
        per_day_only=True,
        rate_first=True,
    )
    made_by = ctx.caller.key_id
    try:
        response = _created_once(
            ctx,
            "batch.jobs.create",
            body,
            lambda key: resources.create_batch_job(
                pool,
                client,
                ctx.owner,
                job,
                created_by=made_by,
                reservation=decision.reservation(),
                idempotency_key=key,
            ),
        )
    except BaseException:
        container.limiter.settle(decision, 0)
        raise
    if ctx.access.idempotent_replay:
        container.limiter.settle(decision, 0)
    return response


def list_batch_jobs(ctx: Context) -> flask.Response:
    pool, client = ctx.container.pool, ctx.container.mistral
    listed = resources.list_batch_jobs(
        pool, client, ctx.owner, _list_query(ctx), limiter=ctx.container.limiter
    )
    return json_response(listed)


# Which path parameter names the object, and which its library, per kind.
_IDS: dict[str, tuple[str, str | None]] = {
    "file": ("file_id", None),
    "library": ("library_id", None),
    "document": ("document_id", "library_id"),
    "batch_job": ("job_id", None),
}


def _owned(
    kind: resources.Kind,
    method: str,
    suffix: str = "",
    *,
    body: bool = False,
    refresh: bool = False,
) -> Handler:
    """A call about one owned object, relayed as Mistral answered (404 for another's)."""
    id_param, parent_param = _IDS[kind]

    def handler(ctx: Context) -> flask.Response:
        answer = resources.owned_call(
            ctx.container.pool,
            ctx.container.mistral,
            ctx.owner,
            kind,
            ctx.params[id_param],
            operation=ctx.route.operation,
            method=method,
            suffix=suffix,
            parent=ctx.params[parent_param] if parent_param else None,
            query_string=_query_string(ctx),
            body=_raw_body(ctx) if body else None,
            refresh=refresh,
        )
        return _relayed(answer)

    return handler


def _deleter(kind: resources.Kind) -> Handler:
    id_param, parent_param = _IDS[kind]

    def handler(ctx: Context) -> flask.Response:
        answer = resources.delete(
            ctx.container.pool,
            ctx.container.mistral,
            ctx.owner,
            kind,
            ctx.params[id_param],
            parent=ctx.params[parent_param] if parent_param else None,
            limiter=ctx.container.limiter,
        )
        return _relayed(answer)

    return handler


def _accesses(method: str) -> Handler:
    def handler(ctx: Context) -> flask.Response:
        answer = resources.share_library(
            ctx.container.pool,
            ctx.container.mistral,
            ctx.owner,
            ctx.params["library_id"],
            operation=ctx.route.operation,
            method=method,
            body=_raw_body(ctx) if method != "GET" else None,
        )
        return _relayed(answer)

    return handler


def _batch_job(cancel: bool) -> Handler:
    def handler(ctx: Context) -> flask.Response:
        pool, client = ctx.container.pool, ctx.container.mistral
        return _relayed(
            resources.batch_job_action(
                pool,
                client,
                ctx.owner,
                ctx.params["job_id"],
                cancel=cancel,
                limiter=ctx.container.limiter,
            )
        )

    return handler


_RESOURCE_HANDLERS: dict[str, Handler] = {
    "files.upload": upload_file,
    "files.list": list_files,
    # A file never changes in Mistral: its stored body (the upload's answer) stays as listed.
    "files.retrieve": _owned("file", "GET"),
    "files.delete": _deleter("file"),
    "files.download": download_file,
    "files.get_signed_url": _owned("file", "GET", "/url"),
    "libraries.list": list_libraries,
    "libraries.create": create_library,
    "libraries.get": _owned("library", "GET", refresh=True),
    "libraries.update": _owned("library", "PATCH", body=True, refresh=True),
    "libraries.replace": _owned("library", "PUT", body=True, refresh=True),
    "libraries.delete": _deleter("library"),
    "libraries.documents.list": list_documents,
    "libraries.documents.upload": upload_document,
    "libraries.documents.get": _owned("document", "GET", refresh=True),
    "libraries.documents.update": _owned("document", "PATCH", body=True, refresh=True),
    "libraries.documents.replace": _owned("document", "PUT", body=True, refresh=True),
    "libraries.documents.delete": _deleter("document"),
    "libraries.documents.text_content": _owned("document", "GET", "/text_content"),
    "libraries.documents.status": _owned("document", "GET", "/status"),
    "libraries.documents.get_signed_url": _owned("document", "GET", "/signed-url"),
    "libraries.documents.extracted_text_signed_url": _owned(
        "document", "GET", "/extracted-text-signed-url"
    ),
    "libraries.documents.reprocess": _owned("document", "POST", "/reprocess"),
    "libraries.accesses.list": _accesses("GET"),
    "libraries.accesses.update_or_create": _accesses("PUT"),
    "libraries.accesses.delete": _accesses("DELETE"),
    "batch.jobs.list": list_batch_jobs,
    "batch.jobs.create": create_batch_job,
    "batch.jobs.get": _batch_job(cancel=False),
    "batch.jobs.cancel": _batch_job(cancel=True),
    "batch.jobs.delete": _deleter("batch_job"),
}


# -- keys, usage, tenants and the audit log -----------------------------------------------------


def create_key(ctx: Context) -> flask.Response:
    fields = keyadmin.parse_create(ctx.json_body(), ctx.caller)
    return json_response(keyadmin.create(ctx.container.pool, fields))


def list_keys(ctx: Context) -> flask.Response:
    return json_response(keyadmin.list_keys(ctx.container.pool, ctx.caller, ctx.request.args))


def update_key(ctx: Context) -> flask.Response:
    fields = keyadmin.parse_update(ctx.json_body())
    key = keyadmin.update(ctx.container.pool, ctx.caller, ctx.params["key_id"], fields)
    # New limits apply on this instance at once, on the others within the cache's TTL.
    ctx.container.keys.forget()
    return json_response(key)


def revoke_key(ctx: Context) -> flask.Response:
    key = keyadmin.revoke(ctx.container.pool, ctx.caller, ctx.params["key_id"])
    ctx.container.keys.forget()
    return json_response(key)


def rotate_key(ctx: Context) -> flask.Response:
    # The body is optional: a bare POST rotates with no grace window.
    has_body = bool(ctx.request.content_length) or bool(ctx.request.mimetype)
    grace_s = keyadmin.parse_rotate(ctx.json_body() if has_body else None)
    rotated = keyadmin.rotate(ctx.container.pool, ctx.caller, ctx.params["key_id"], grace_s)
    ctx.container.keys.forget()
    return json_response(rotated)


def read_usage(ctx: Context) -> flask.Response:
    query = usage.parse_query(ctx.request.args, caller=ctx.caller)
    return json_response(usage.usage(ctx.container.pool, query))


def create_tenant(ctx: Context) -> flask.Response:
    fields = tenants.parse_create(ctx.json_body())
    return json_response(tenants.create(ctx.container.pool, fields))


def list_tenants(ctx: Context) -> flask.Response:
    return json_response(tenants.list_tenants(ctx.container.pool, ctx.request.args))


def get_tenant(ctx: Context) -> flask.Response:
    tenant_id = tenant_scope(ctx.caller, ctx.params["tenant_id"])
    return json_response(tenants.get(ctx.container.pool, tenant_id))


def update_tenant(ctx: Context) -> flask.Response:
    fields = tenants.parse_update(ctx.json_body())
    tenant_id = ctx.params["tenant_id"]
    if fields.get("disabled") and tenant_id == ctx.owner:
        # An operator disabling its own tenant would lock every operator out.
        raise Conflict("an operator cannot disable its own tenant")
    tenant = tenants.update(ctx.container.pool, tenant_id, fields)
    # A disabled tenant's keys stop here at once, on the other instances within the TTL.
    ctx.container.keys.forget()
    return json_response(tenant)


def list_audit(ctx: Context) -> flask.Response:
    named = ctx.query("tenant_id") or None
    tenant_id: str | None
    if named is None and crosses_tenants(ctx.caller.role):
        tenant_id = None  # an operator's default view: every tenant
    else:
        tenant_id = tenant_scope(ctx.caller, named)
    query = audit.AuditQuery.from_args(ctx.request.args, tenant_id)
    return json_response(audit.list_entries(ctx.container.pool, query))


def read_whoami(ctx: Context) -> flask.Response:
    return json_response(whoami.describe(ctx.principal, ctx.container.settings))


# -- the console: static files only; its data comes from the keyed routes ---------------------

_CONSOLE = Path(__file__).resolve().parent / "console"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Nothing but the gateway itself: no script, style, font or image from elsewhere, and the
# page may only call the gateway's own API (the key never leaves for another origin).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@cache
def _console_files() -> dict[str, tuple[bytes, str]]:
    """Every shipped console file by name, read once per instance."""
    return {
        path.name: (path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(_CONSOLE.iterdir())
        if path.suffix in _TYPES
    }


def _console_file(name: str) -> flask.Response:
    found = _console_files().get(name)
    if found is None:
        raise NotFound.of("Console file", name)
    body, content_type = found
    response = flask.Response(body, content_type=content_type)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


def console(ctx: Context) -> flask.Response:
    return _console_file("index.html")


def console_asset(ctx: Context) -> flask.Response:
    return _console_file(ctx.params["asset"])


_HANDLERS: dict[str, Handler] = {
    "conversations.delete": delete_conversation,
    "gateway.conversations.archive": _archiver(True),
    "gateway.conversations.unarchive": _archiver(False),
    "agents.create": create_agent,
    "agents.list": list_agents,
    "agents.list_pages": list_agent_pages,
    "agents.get": get_agent,
    "agents.update": update_agent,
    "agents.delete": delete_agent,
    "agents.update_version": switch_version,
    "agents.list_versions": _relay("GET", "/versions"),
    "agents.get_version": _relay("GET", "/versions/{version}"),
    "agents.create_alias": _relay("PUT", "/aliases"),
    "agents.list_aliases": _relay("GET", "/aliases"),
    "agents.delete_alias": _relay("DELETE", "/aliases"),
    "models.list": list_models,
    "models.retrieve": retrieve_model,
    "gateway.keys.create": create_key,
    "gateway.keys.list": list_keys,
    "gateway.keys.update": update_key,
    "gateway.keys.revoke": revoke_key,
    "gateway.keys.rotate": rotate_key,
    "gateway.usage": read_usage,
    "gateway.tenants.create": create_tenant,
    "gateway.tenants.list": list_tenants,
    "gateway.tenants.get": get_tenant,
    "gateway.tenants.update": update_tenant,
    "gateway.audit.list": list_audit,
    "gateway.whoami": read_whoami,
    "gateway.console": console,
    "gateway.console.asset": console_asset,
    "gateway.health": health,
    **_RESOURCE_HANDLERS,
}
# A batch job create asks the token budget itself (`create_batch_job`).
app = FunctionApp("admin", _HANDLERS, self_limited=("batch.jobs.create",))


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)

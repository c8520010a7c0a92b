"""The route table: which function owns which method and path.

This table is the single source of truth. The local router dispatches with it,
the OpenAPI document is checked against it, and a test compares the Terraform
URL map with it, so the three cannot drift.

Mistral-compatible routes keep Mistral's exact paths so the official SDK works
unchanged. The gateway's own routes live under ``/gateway/``, a prefix Mistral
does not use, so they can never collide with a present or future Mistral path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

__all__ = [
    "FUNCTIONS",
    "GATEWAY_PREFIX",
    "PASSTHROUGH_PATHS",
    "ROUTES",
    "Match",
    "Route",
    "health_path",
    "match",
    "routes_for",
]

FUNCTIONS = ("start", "history", "admin", "batch")
GATEWAY_PREFIX = "/gateway/v1"

_PARAM = re.compile(r"\{([a-z_]+)\}")
# Ids are put into paths unencoded by the SDK (wire contract 1.3), so a path
# parameter is one segment of URL-safe characters.
_SEGMENT = r"[A-Za-z0-9._~:@!$&'()*+,;=-]+"


@dataclass(frozen=True)
class Route:
    """One method and path template, owned by one function."""

    method: str
    template: str
    function: str
    operation: str
    # False for routes that only Pub/Sub (not the load balancer) may reach.
    public: bool = True
    mistral: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mistral", not self.template.startswith(GATEWAY_PREFIX))

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(rf"(?P<\1>{_SEGMENT})", self.template) + "$")

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.template))


def health_path(function: str) -> str:
    return f"{GATEWAY_PREFIX}/health/{function}"


# Metered pass-through operations and their Mistral paths (a `stream` variant shares
# its operation's route: the body's `"stream": true` decides).
PASSTHROUGH_PATHS: dict[str, str] = {
    "chat.complete": "/v1/chat/completions",
    "fim.complete": "/v1/fim/completions",
    "embeddings.create": "/v1/embeddings",
    "agents.complete": "/v1/agents/completions",
    "classifiers.classify": "/v1/classifications",
    "classifiers.classify_chat": "/v1/chat/classifications",
    "classifiers.moderate": "/v1/moderations",
    "classifiers.moderate_chat": "/v1/chat/moderations",
    "ocr.process": "/v1/ocr",
    "audio.transcriptions.complete": "/v1/audio/transcriptions",
    "audio.speech.complete": "/v1/audio/speech",
}


def _routes() -> tuple[Route, ...]:
    conv = "/v1/conversations"
    one = conv + "/{conversation_id}"
    agents = "/v1/agents"
    agent = agents + "/{agent_id}"
    gw = GATEWAY_PREFIX
    table = [
        # start: the write path
        Route("POST", conv, "start", "conversations.start"),
        Route("POST", one, "start", "conversations.append"),
        Route("POST", one + "/restart", "start", "conversations.restart"),
        # metered pass-through (shared.passthrough), relayed to Mistral
        *(Route("POST", path, "start", op) for op, path in PASSTHROUGH_PATHS.items()),
        # history: the read path, answered from the gateway's database
        Route("GET", conv, "history", "conversations.list"),
        Route("GET", one, "history", "conversations.get"),
        Route("GET", one + "/history", "history", "conversations.history"),
        Route("GET", one + "/messages", "history", "conversations.messages"),
        Route("GET", gw + "/conversations", "history", "gateway.conversations.list"),
        Route(
            "GET",
            gw + "/conversations/{conversation_id}/entries",
            "history",
            "gateway.conversations.entries",
        ),
        Route("GET", gw + "/batches", "history", "gateway.batches.list"),
        Route("GET", gw + "/batches/{batch_id}", "history", "gateway.batches.get"),
        Route("GET", gw + "/batches/{batch_id}/items", "history", "gateway.batches.items"),
        Route("GET", gw + "/openapi.json", "history", "gateway.openapi"),
        # admin: the control plane
        Route("DELETE", one, "admin", "conversations.delete"),
        Route("POST", agents, "admin", "agents.create"),
        Route("GET", agents, "admin", "agents.list"),
        Route("GET", agents + "/pages", "admin", "agents.list_pages"),
        Route("GET", agent, "admin", "agents.get"),
        Route("PATCH", agent, "admin", "agents.update"),
        Route("DELETE", agent, "admin", "agents.delete"),
        Route("PATCH", agent + "/version", "admin", "agents.update_version"),
        Route("GET", agent + "/versions", "admin", "agents.list_versions"),
        Route("GET", agent + "/versions/{version}", "admin", "agents.get_version"),
        Route("PUT", agent + "/aliases", "admin", "agents.create_alias"),
        Route("GET", agent + "/aliases", "admin", "agents.list_aliases"),
        Route("DELETE", agent + "/aliases", "admin", "agents.delete_alias"),
        # shared read-only: Mistral's models, filtered by the key's allowed_models
        Route("GET", "/v1/models", "admin", "models.list"),
        Route("GET", "/v1/models/{model_id}", "admin", "models.retrieve"),
        Route(
            "POST",
            gw + "/conversations/{conversation_id}/archive",
            "admin",
            "gateway.conversations.archive",
        ),
        Route(
            "POST",
            gw + "/conversations/{conversation_id}/unarchive",
            "admin",
            "gateway.conversations.unarchive",
        ),
        Route("POST", gw + "/keys", "admin", "gateway.keys.create"),
        Route("GET", gw + "/keys", "admin", "gateway.keys.list"),
        Route("PATCH", gw + "/keys/{key_id}", "admin", "gateway.keys.update"),
        Route("POST", gw + "/keys/{key_id}/revoke", "admin", "gateway.keys.revoke"),
        Route("POST", gw + "/keys/{key_id}/rotate", "admin", "gateway.keys.rotate"),
        Route("GET", gw + "/usage", "admin", "gateway.usage"),
        Route("POST", gw + "/tenants", "admin", "gateway.tenants.create"),
        Route("GET", gw + "/tenants", "admin", "gateway.tenants.list"),
        Route("GET", gw + "/tenants/{tenant_id}", "admin", "gateway.tenants.get"),
        Route("PATCH", gw + "/tenants/{tenant_id}", "admin", "gateway.tenants.update"),
        Route("GET", gw + "/audit", "admin", "gateway.audit.list"),
        Route("GET", gw + "/whoami", "admin", "gateway.whoami"),
        # the web console: a static shell (public) whose data comes from the routes above
        Route("GET", gw + "/console", "admin", "gateway.console"),
        Route("GET", gw + "/console/{asset}", "admin", "gateway.console.asset"),
        # tenant-owned Mistral resources (shared.resources)
        *_owned_routes(),
        # batch: reached by the Pub/Sub push subscription, not the load balancer
        Route("POST", gw + "/batches/events", "batch", "gateway.batches.deliver", public=False),
        # batch: reached by Cloud Scheduler (shared.resources.sweep), not the load balancer
        Route("POST", gw + "/batch/jobs/sweep", "batch", "gateway.batch_jobs.sweep", public=False),
    ]
    # The batch function sits behind Pub/Sub, not the load balancer: its health
    # route is reached on the function's own URL.
    table += [
        Route("GET", health_path(f), f, "gateway.health", public=f != "batch") for f in FUNCTIONS
    ]
    return tuple(table)


def _owned_routes() -> list[Route]:
    """Files, libraries with their documents and accesses, Mistral's batch jobs: served by
    admin, each object kept to the tenant that made it (README, "Tenant-owned resources")."""
    file = "/v1/files/{file_id}"
    lib = "/v1/libraries/{library_id}"
    doc = lib + "/documents/{document_id}"
    job = "/v1/batch/jobs/{job_id}"
    table = [
        ("POST", "/v1/files", "files.upload"),
        ("GET", "/v1/files", "files.list"),
        ("GET", file, "files.retrieve"),
        ("DELETE", file, "files.delete"),
        ("GET", file + "/content", "files.download"),
        ("GET", file + "/url", "files.get_signed_url"),
        ("GET", "/v1/libraries", "libraries.list"),
        ("POST", "/v1/libraries", "libraries.create"),
        ("GET", lib, "libraries.get"),
        ("PATCH", lib, "libraries.update"),
        ("PUT", lib, "libraries.replace"),
        ("DELETE", lib, "libraries.delete"),
        ("GET", lib + "/documents", "libraries.documents.list"),
        ("POST", lib + "/documents", "libraries.documents.upload"),
        ("GET", doc, "libraries.documents.get"),
        ("PATCH", doc, "libraries.documents.update"),
        ("PUT", doc, "libraries.documents.replace"),
        ("DELETE", doc, "libraries.documents.delete"),
        ("GET", doc + "/text_content", "libraries.documents.text_content"),
        ("GET", doc + "/status", "libraries.documents.status"),
        ("GET", doc + "/signed-url", "libraries.documents.get_signed_url"),
        (
            "GET",
            doc + "/extracted-text-signed-url",
            "libraries.documents.extracted_text_signed_url",
        ),
        ("POST", doc + "/reprocess", "libraries.documents.reprocess"),
        ("GET", lib + "/share", "libraries.accesses.list"),
        ("PUT", lib + "/share", "libraries.accesses.update_or_create"),
        ("DELETE", lib + "/share", "libraries.accesses.delete"),
        ("GET", "/v1/batch/jobs", "batch.jobs.list"),
        ("POST", "/v1/batch/jobs", "batch.jobs.create"),
        ("GET", job, "batch.jobs.get"),
        ("POST", job + "/cancel", "batch.jobs.cancel"),
        ("DELETE", job, "batch.jobs.delete"),
    ]
    return [Route(method, path, "admin", operation) for method, path, operation in table]


ROUTES: tuple[Route, ...] = _routes()


@dataclass(frozen=True)
class Match:
    """The outcome of matching a request: a route, or why none matched."""

    route: Route | None
    params: dict[str, str]
    # Methods the path allows, when the path matched but the method did not.
    allowed: tuple[str, ...] = ()


def match(method: str, path: str, routes: tuple[Route, ...] = ROUTES) -> Match:
    """Find the route for a method and path (405 information if only the path fits)."""
    allowed: list[str] = []
    for route in routes:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method.upper():
            return Match(route, found.groupdict())
        allowed.append(route.method)
    return Match(None, {}, tuple(sorted(set(allowed))))


def routes_for(function: str) -> tuple[Route, ...]:
    return tuple(r for r in ROUTES if r.function == function)

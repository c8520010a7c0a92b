"""Assemble the document: one path item per public route of `shared.http.routes`, nothing else.

Only routes served through the front door are documented: the batch function's Pub/Sub
push route and its health route are reached by Pub/Sub and Cloud Run alone (the load
balancer answers them 404/405), so a client reading the document never meets them.

The route table gives each operation's method, path, path parameters and function;
the permission table (`shared.tenancy.auth`) its security and roles; `_operations` the rest.

A Mistral route (`Route.mistral`) is documented from the SDK's operation on its method and
path (`shared.surface`, sdk_operations.json): its request body is always the SDK's request
model (a `#stream` variant's model as an alternative), combined with what the gateway
refuses beyond it (`BODY_RULES`, defined beside the validation code that refuses it).
Without an entry in `_operations.OPERATIONS` the whole entry is derived: summary and tag
from the SDK's operation name, query parameters from its parameters model, 200 from its
response model (an event stream too when it streams), a multipart body for a multipart
request. A gateway route (under /gateway/v1) without an entry fails the build, as does a
Mistral route the SDK has no operation for, so a route cannot ship undocumented.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.http import routes
from shared.openapi._mistral import MISTRAL_PREFIX, REQUEST_PREFIX, derive, sdk_version
from shared.openapi._operations import IDEMPOTENCY_KEY, OPERATIONS, Operation, Success
from shared.openapi._schemas import SCHEMAS, Json, ref

if TYPE_CHECKING:
    from shared.surface import SdkOperation
from shared.tenancy.auth import OPERATION_PERMISSIONS, PUBLIC_OPERATIONS, ROLE_PERMISSIONS
from shared.tenancy.keys import KEY_PREFIX

__all__ = ["FRONT_DOOR", "build", "derived_refusals", "is_authenticated", "operation_id"]

_JSON = "application/json"
_SSE = "text/event-stream"
_MULTIPART = "multipart/form-data"
_SCHEMAS = "#/components/schemas/"
# Ids the gateway and Mistral hand out. The route table routes any URL-safe segment;
# an id of other characters is simply not found.
_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_-]+$"}
_PATH_SCHEMAS: dict[str, Json] = {
    # shared/batch: the publisher's batch id (schemas/batch-message.schema.json), or msg_/bad_.
    "batch_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
    "version": {
        "type": "string",
        "pattern": "^[0-9]{1,9}$",
        "description": "A version number (Mistral answers 422 to anything else).",
    },
}

# status -> what it means
_ERRORS: dict[int, str] = {
    400: "The body is not valid JSON, or nests deeper than 100 levels (`invalid_json`); or,"
    " from the load balancer, a Content-Length header that is not a length.",
    401: "No key, a malformed `Authorization` header, or an unknown or revoked key.",
    403: "The key's role may not do this.",
    404: "No such object for the caller: another tenant's object answers 404 as well.",
    405: "The path exists, but not with this method; `Allow` lists the methods it has.",
    409: "Conflict with the object's current state, or a concurrent request (may carry"
    " `Retry-After`).",
    413: "The body is larger than the deployment's limit (MAX_BODY_BYTES), or, from the load"
    " balancer, the request larger than Cloud Run takes (32 MiB).",
    415: "The body is not `application/json`.",
    422: "Wrong fields or types, or a NUL character (U+0000) anywhere in the body or query:"
    " `detail` lists every problem.",
    429: "The key's rate limit or the tenant's token budget is spent; nothing was sent upstream.",
    502: "Mistral failed or could not be reached.",
    503: "The database or Redis is unreachable, or the circuit breaker to Mistral is open.",
    504: "Mistral did not answer in time.",
}
_UPSTREAM_4XX = (
    "Mistral refused the request: its own status and body, relayed unchanged (e.g. a 422"
    " whose body is only `{detail: [...]}`)."
)

_HEADERS: dict[str, Json] = {
    "X-Request-Id": {
        "description": "The request's id (the caller's own if it sent a plain one), in every log"
        " line of the request.",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Request-Id-If-Routed": {
        "description": "The request's id; absent when the load balancer itself answered (a path"
        " or method no function owns, a request it cannot frame).",
        "schema": {"type": "string"},
    },
    "RateLimit-Limit": {
        "description": "Requests the key may make per window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window is full again.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "Retry-After-If-Known": {
        "description": "Seconds to wait before trying again, when known.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "required": True,
        "schema": {"type": "string", "const": 'Bearer realm="gateway"'},
    },
    "Allow": {
        "description": "The methods the path has, comma-separated.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Gateway-Stored": {
        "description": "`false`: Mistral answered but the gateway could not store the turn.",
        "schema": {"type": "string", "enum": ["false"]},
    },
    "Idempotent-Replayed": {
        "description": "`true`: the stored first answer to this Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_RATE_LIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

_REQUEST_ID_PARAMETER: Json = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "description": "Your id for the request: kept, echoed back and logged if it is 1 to 64"
    " letters, digits, `-` and `_`; anything else is replaced by an id of the gateway's own.",
    "schema": {"type": "string"},
}

_DESCRIPTION = """\
A gateway in front of Mistral's Agents and Conversations API. The Mistral-compatible \
routes keep Mistral's paths and shapes, so the official `mistralai` SDK works unchanged \
with `Mistral(api_key=<gateway key>, server_url=<gateway URL>)`; fields the gateway does \
not know pass through in both directions. The gateway's own routes (keys, usage, stored \
conversations, batches, health) live under `/gateway/v1`.

Every operation but health and this document needs a gateway key (`Authorization: \
Bearer mgw_...`); `x-required-permission` names what the key's role must hold and \
`x-roles` the roles that hold it. Every answer carries `X-Request-Id`; answers to \
authenticated requests carry `RateLimit-Limit`, `RateLimit-Remaining` and \
`RateLimit-Reset`. Errors the gateway answers have Mistral's error body `{object: "error", \
message, type, param, code, request_id}`: `type` is Mistral's category, `code` the cause \
(stable, one per cause), and a 422 adds the `detail` list the SDK parses. No string in a \
body or query may hold a NUL character (U+0000): PostgreSQL cannot store it, so it is \
refused with 422 everywhere. `x-function` names the Cloud Run function that serves the \
operation.
"""

# The routes the load balancer serves: the ones the document lists.
FRONT_DOOR = tuple(r for r in routes.ROUTES if r.public)


def operation_id(route: routes.Route, table: tuple[routes.Route, ...] = routes.ROUTES) -> str:
    """The route's operation id; one shared by several routes (health) gets the function."""
    shared = Counter(r.operation for r in table)[route.operation] > 1
    return f"{route.operation}.{route.function}" if shared else route.operation


def is_authenticated(route: routes.Route) -> bool:
    """True if the gateway checks a key for this route (public routes of the table)."""
    return route.public and route.operation not in PUBLIC_OPERATIONS


def _roles(operation: str) -> list[str]:
    permission = OPERATION_PERMISSIONS[operation]
    return [role for role, held in ROLE_PERMISSIONS.items() if permission in held]


def _header_refs(*names: str) -> Json:
    return {
        name.removesuffix("-If-Routed").removesuffix("-If-Known"): _header(name) for name in names
    }


def _header(name: str) -> Json:
    return {"$ref": f"#/components/headers/{name}"}


_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationFailed",
    429: "RateLimited",
    502: "UpstreamUnavailable",
    503: "ServiceUnavailable",
    504: "UpstreamTimeout",
}
# The variant of a 4xx on an operation that calls Mistral: Mistral's own refusal is relayed.
_OR_MISTRAL = "OrMistral"


def _error(status: int, upstream: bool) -> Json:
    """The shared response object of an error status."""
    schema = ref("ValidationError" if status == 422 else "Error")
    description = _ERRORS[status]
    if upstream:
        schema = {"anyOf": [schema, ref("UpstreamError")]}
        description += " Or Mistral's own answer with this status, relayed unchanged."
    # The load balancer (the router, locally) answers these itself for requests it cannot
    # route or frame: without the function's request id.
    names = ["X-Request-Id-If-Routed" if status in (400, 404, 405, 413) else "X-Request-Id"]
    names += {
        401: ["WWW-Authenticate"],
        405: ["Allow"],
        409: ["Retry-After-If-Known"],
        429: ["Retry-After", *_RATE_LIMIT],
        502: ["Retry-After-If-Known"],
        503: ["Retry-After"],
        504: ["Retry-After-If-Known"],
    }.get(status, [])
    return {
        "description": description,
        "headers": _header_refs(*names),
        "content": {_JSON: {"schema": schema}},
    }


def _error_responses() -> Json:
    responses = {name: _error(status, False) for status, name in _ERROR_NAMES.items()}
    responses |= {
        name + _OR_MISTRAL: _error(status, True)
        for status, name in _ERROR_NAMES.items()
        if status < 500
    }
    responses["MistralRefused"] = {
        "description": _UPSTREAM_4XX,
        "headers": _header_refs("X-Request-Id", "Retry-After-If-Known"),
        "content": {_JSON: {"schema": ref("UpstreamError")}},
    }
    return responses


def _error_ref(status: int, upstream: bool) -> Json:
    name = _ERROR_NAMES[status] + (_OR_MISTRAL if upstream and status < 500 else "")
    return {"$ref": f"#/components/responses/{name}"}


def _success(success: Success, authenticated: bool) -> Json:
    names = ["X-Request-Id", *success.headers]
    if authenticated:
        names += _RATE_LIMIT
    response: Json = {"description": success.description, "headers": _header_refs(*names)}
    if success.schema is not None:
        response["content"] = {m: {"schema": success.schema} for m in success.media_types}
        if success.stream:
            response["content"][_SSE] = {"schema": success.events or ref("ServerSentEvent")}
    return response


def _error_statuses(route: routes.Route, spec: Operation) -> set[int]:
    # Any request: 400 and 413 from the front door (a Content-Length that is no length, a
    # request larger than Cloud Run takes), 405 for another method on the path, 422 for a NUL
    # character in the query string.
    statuses = {400, 405, 413, 422, *spec.errors}
    if is_authenticated(route):
        statuses |= {401, 429, 503}
        if len(_roles(route.operation)) < len(ROLE_PERMISSIONS):
            statuses.add(403)
    if route.params:
        statuses.add(404)
    if spec.body is not None:
        statuses |= {400, 413, 415, 422}
    if spec.query or spec.headers:
        statuses.add(422)
    if spec.upstream:
        statuses |= {502, 503, 504}
    return statuses


def _responses(route: routes.Route, spec: Operation) -> Json:
    authenticated = is_authenticated(route)
    responses: Json = {
        status: _success(success, authenticated) for status, success in spec.responses.items()
    }
    if not spec.derived_errors:
        return responses
    for status in sorted(_error_statuses(route, spec)):
        responses.setdefault(str(status), _error_ref(status, spec.upstream))
    if spec.upstream:
        responses["4XX"] = {"$ref": "#/components/responses/MistralRefused"}
    return responses


def _parameters(route: routes.Route, spec: Operation) -> list[Json]:
    path = [{"$ref": f"#/components/parameters/{name}"} for name in route.params]
    return [*path, *spec.query, *spec.headers, {"$ref": "#/components/parameters/X-Request-Id"}]


def _shared_parameters(table: tuple[routes.Route, ...]) -> Json:
    """Path parameters (by name, across the route table) and the X-Request-Id header."""
    names = sorted({name for route in table for name in route.params})
    parameters: Json = {
        name: {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_SCHEMAS.get(name, _ID),
        }
        for name in names
    }
    parameters["X-Request-Id"] = _REQUEST_ID_PARAMETER
    return parameters


def _description(route: routes.Route, spec: Operation) -> str:
    parts = [spec.description] if spec.description else []
    if is_authenticated(route):
        permission = OPERATION_PERMISSIONS[route.operation]
        parts.append(f"Needs `{permission}`: roles {', '.join(_roles(route.operation))}.")
    elif route.public:
        parts.append("Open: no key needed.")
    return " ".join(parts)


def _operation(route: routes.Route, spec: Operation, table: tuple[routes.Route, ...]) -> Json:
    operation: Json = {
        "operationId": operation_id(route, table),
        "summary": spec.summary,
        "description": _description(route, spec),
        "tags": [spec.tag],
        "parameters": _parameters(route, spec),
    }
    if spec.body is not None:
        content = spec.body_content or {_JSON: spec.body}
        operation["requestBody"] = {
            "required": spec.body_required,
            "content": {media: {"schema": schema} for media, schema in content.items()},
        }
    operation["responses"] = _responses(route, spec)
    if spec.links:
        for status, response in operation["responses"].items():
            if status.startswith("2") and "content" in response:
                response["links"] = dict(spec.links)
    if is_authenticated(route):
        operation["x-required-permission"] = OPERATION_PERMISSIONS[route.operation]
        operation["x-roles"] = _roles(route.operation)
    else:
        operation["security"] = []
    operation["x-function"] = route.function
    return operation


def body_rules() -> dict[str, Json]:
    """Operation -> what the gateway refuses in its body beyond Mistral's schema (JSON
    Schema), read from the modules whose validation refuses it."""
    from shared.agents.operations import body_rules as agents
    from shared.conversations.turns import body_rules as turns

    return {**turns(), **agents()}


def _sdk_operations(route: routes.Route) -> list[SdkOperation]:
    """The SDK's operations on the route's method and path: the plain one first."""
    from shared.surface import operations

    found = [o for o in operations() if o.method == route.method and o.path == route.template]
    return sorted(found, key=lambda o: o.variant is not None)


def _stream_frame(model: str | None, sentinel: str | None = None) -> Json:
    """One event of a derived stream. The SDK's events model is the whole event (its
    `event` and `data`), so a `data:` line holds the JSON of that model's `data`; a
    stream the SDK reads to a sentinel ends with `data: <sentinel>`, which is no JSON."""
    data: Json = {"type": "string"}
    if model is not None:
        payload = {"$ref": ref(MISTRAL_PREFIX + model)["$ref"] + "/properties/data"}
        data |= {"contentMediaType": _JSON, "contentSchema": payload}
    description = "One server-sent event; `data` holds the JSON of one event"
    if sentinel is not None:
        data = {"anyOf": [{"const": sentinel}, data]}
        description += f", and the last one `{sentinel}`"
    return {
        "type": "object",
        "description": description + ".",
        "properties": {"event": {"type": "string"}, "data": data},
        "required": ["data"],
    }


def _derived_success(sdk: list[SdkOperation]) -> tuple[str, Success]:
    plain = sdk[0]
    streamed = next((o for o in sdk if o.streams), None)
    # A stream variant names its events' model; a plain operation that streams does not.
    events_model = streamed.response_model if streamed and streamed is not plain else None
    events = _stream_frame(events_model, streamed.stream_sentinel if streamed else None)
    status = str(plain.success_status)
    if plain.response_model is None:
        if status == "204":
            return status, Success("Done. No body.")
        if plain.response_scalar is not None:
            scalar: Json = {"type": "string"} if plain.response_scalar == "str" else {}
            return status, Success("Mistral's answer, relayed as it came.", scalar)
        return status, Success(
            "Mistral's answer, relayed as it came.", {}, media_types=("application/octet-stream",)
        )
    schema = ref(MISTRAL_PREFIX + plain.response_model)
    if plain.response_list:
        schema = {"type": "array", "items": schema}
    description = "Mistral's answer, relayed as it came"
    if streamed is not None:
        description += '; with `"stream": true` an event stream'
    return status, Success(description + ".", schema, stream=streamed is not None, events=events)


def derived_refusals(route: routes.Route) -> frozenset[int]:
    """What the gateway itself refuses on a Mistral route without an entry, beyond what
    its path and roles imply: a key's allow-list (403) on a metered call or a model read,
    and a referenced agent or file that is not the tenant's (404)."""
    sdk = _sdk_operations(route)
    if not sdk:
        return frozenset()
    plain = sdk[0]
    if plain.treatment == "metered":
        return frozenset({403, 404})
    if plain.name == "models.retrieve":
        return frozenset({403})
    if plain.name == "batch.jobs.create":
        return frozenset({404})
    return frozenset()


def _with_query_rules(op: SdkOperation, query: tuple[Json, ...]) -> tuple[Json, ...]:
    """A tenant-owned list's parameters with what the gateway's paging refuses, as it reads it
    (`shared.resources.operations.QUERY_RULES`), and those it reads as JSON (`QUERY_JSON`):
    the lists are answered from the records."""
    if op.treatment != "owned" or not query:
        return query
    from shared.resources.operations import QUERY_JSON, QUERY_RULES

    def ruled(p: Json) -> Json:
        if p["name"] in QUERY_RULES:
            return {**p, "schema": {**p["schema"], **QUERY_RULES[p["name"]]}}
        if p["name"] in QUERY_JSON:
            plain = {k: v for k, v in p.items() if k != "schema"}
            return {**plain, "content": {_JSON: {"schema": dict(QUERY_JSON[p["name"]])}}}
        return p

    return tuple(ruled(p) for p in query)


def _derived_operation(
    route: routes.Route, sdk: list[SdkOperation], queries: Mapping[str, tuple[Json, ...]]
) -> Operation:
    """A Mistral route's whole entry, from the SDK's operation alone."""
    from shared.resources.idempotent import IDEMPOTENT_CREATES

    plain = sdk[0]
    name = plain.name.removeprefix("beta.")
    status, success = _derived_success(sdk)
    headers: tuple[Json, ...] = ()
    errors = derived_refusals(route)
    # Creates and metered calls take an Idempotency-Key (a stream's is not read).
    if name in IDEMPOTENT_CREATES or plain.treatment == "metered":
        header = IDEMPOTENCY_KEY
        if success.stream:
            unread = " Not read on a streamed call: a retried stream is a second call."
            header = {**header, "description": header["description"] + unread}
        headers = (header,)
        success = dataclasses.replace(success, headers=("Idempotent-Replayed",))
        errors |= {409}
    return Operation(
        summary=f"Mistral's {name}",
        tag=name.split(".")[0].capitalize(),
        responses={status: success},
        description=f"Mistral's `{plain.operation_id}`, as the SDK's `{plain.name}` calls it.",
        query=_with_query_rules(plain, queries.get(plain.parameters_model or "", ())),
        headers=headers,
        upstream=True,
        errors=errors,
    )


def _body(
    sdk: list[SdkOperation], rules: Json | None, schemas: Mapping[str, Json]
) -> tuple[str, Json, Mapping[str, Json]] | None:
    """The route's body: (component name, its schema, content by media type).

    The SDK's request model; with a `#stream` variant that differs only in some fields
    (`stream`), one object whose differing fields take either; with the gateway's rules, the
    rules folded in field by field and their text rule put on the strings it covers. One
    object, not an `allOf` of the SDK's model and the rules: a generator (schemathesis) then
    draws valid bodies directly instead of drawing the SDK's and discarding most.
    """
    models = list(dict.fromkeys(o.request_model for o in sdk if o.request_model is not None))
    if not models:
        return None
    options = [ref(REQUEST_PREFIX + m) for m in models]
    schema = _merged([_resolved(o, schemas) for o in options]) if len(options) > 1 else None
    if schema is None:
        schema = options[0] if len(options) == 1 else {"anyOf": options}
    description = f"The SDK's `{models[0]}`"
    if len(options) > 1:
        description += f" (or, to stream, `{models[-1]}`)"
    if rules is not None:
        schema = _with_rules(_resolved(schema, schemas), rules, schemas)
        description += ", with what the gateway refuses beyond it"
    schema = {**schema, "description": description + "."}
    media = _MULTIPART if sdk[0].request_kind == "multipart" else _JSON
    return models[0], schema, {media: ref(models[0])}


def _resolved(node: Json, schemas: Mapping[str, Json]) -> Json:
    """`node` with a top-level `$ref` to a component replaced by a copy of the component."""
    while "$ref" in node and node["$ref"].startswith(_SCHEMAS):
        target = schemas[node["$ref"].removeprefix(_SCHEMAS)]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return dict(node)


def _merged(variants: list[Json]) -> Json | None:
    """One object for variants with the same fields: a field whose schemas differ takes any
    of them. None when they are not such objects."""
    fields = [tuple(v.get("properties", {})) for v in variants]
    rest = [{k: v for k, v in o.items() if k not in ("properties", "required")} for o in variants]
    if not fields[0] or any(f != fields[0] for f in fields) or any(r != rest[0] for r in rest):
        return None
    properties = {}
    for name in fields[0]:
        found: list[Json] = []
        for variant in variants:
            if variant["properties"][name] not in found:
                found.append(variant["properties"][name])
        properties[name] = found[0] if len(found) == 1 else {"anyOf": found}
    required = [
        r
        for r in variants[0].get("required", [])
        if all(r in v.get("required", []) for v in variants)
    ]
    merged: Json = {**rest[0], "properties": properties}
    if required:
        merged["required"] = required
    return merged


def _with_rules(base: Json, rules: Json, schemas: Mapping[str, Json]) -> Json:
    """The SDK's object with the gateway's rules folded in: each field's rule beside the
    field's schema, required fields joined, the rules' combinators added, and the text rule
    (`x-text`) put on every string at its paths."""
    rules = dict(rules)
    text = rules.pop("x-text", None)
    properties = dict(base.get("properties", {}))
    for name, rule in rules.pop("properties", {}).items():
        properties[name] = {"allOf": [properties[name], rule]} if name in properties else rule
    out = {**base, "properties": properties}
    required = list(dict.fromkeys([*base.get("required", []), *rules.pop("required", [])]))
    if required:
        out["required"] = required
    for key, value in rules.items():
        if key in out and key in ("oneOf", "anyOf", "allOf"):
            out["allOf"] = [*out.get("allOf", []), {key: value}]
        else:
            out[key] = value
    if text is not None:
        for path in text["paths"]:
            out = _refine(out, tuple(path), text["schema"], schemas)
    return out


def _refine(node: Json, path: tuple[str, ...], leaf: Json, schemas: Mapping[str, Json]) -> Json:
    """`node` with `leaf` added to every string schema at `path` ("*": a list's items).
    References along the path are copied in, so the components themselves stay as the SDK
    has them (responses share them)."""
    node = _resolved(node, schemas)
    node.pop("discriminator", None)  # its mapping names the unrefined components
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            node[key] = [_refine(option, path, leaf, schemas) for option in node[key]]
    if not path:
        return {**node, **leaf} if node.get("type") == "string" else node
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(node.get("items"), dict):
        node["items"] = _refine(node["items"], rest, leaf, schemas)
    elif head in node.get("properties", {}):
        node["properties"] = {
            **node["properties"],
            head: _refine(node["properties"][head], rest, leaf, schemas),
        }
    return node


def build(
    table: tuple[routes.Route, ...] | None = None,
    specs: Mapping[str, Operation] = OPERATIONS,
) -> Json:
    """The whole document for a route table (the front door's by default), as JSON-ready data.

    Raises LookupError when the table and the operation entries disagree: a gateway route
    without an entry, a Mistral route the SDK has no operation for, an entry no route uses
    any more, or a Mistral entry that writes its own body. Routes that are not public are
    left out: they have no entry.
    """
    table = FRONT_DOOR if table is None else tuple(r for r in table if r.public)
    used = {r.operation for r in table}
    sdk = {r.operation: _sdk_operations(r) for r in table if r.mistral}
    missing = sorted(
        r.operation for r in table if r.operation not in specs and not sdk.get(r.operation)
    )
    stale = sorted(set(specs) - used)
    handwritten = sorted(o for o in sdk if o in specs and specs[o].body is not None)
    if missing or stale or handwritten:
        raise LookupError(
            f"OpenAPI entries out of step with the route table: routes without an entry"
            f" {missing}, entries without a route {stale}, Mistral bodies written by hand"
            f" {handwritten}"
        )
    found = [o for ops in sdk.values() for o in ops]
    derived = derive(
        [o.response_model for o in found if o.response_model is not None],
        [o.parameters_model for ops in sdk.values() for o in ops[:1] if o.parameters_model],
        [o.request_model for o in found if o.request_model is not None],
    )
    schemas: dict[str, Json] = dict(derived.schemas)
    rules = body_rules()
    resolved: dict[str, Operation] = {}
    for route in table:
        operation = route.operation
        ops = sdk.get(operation)
        if not ops:
            resolved[operation] = specs[operation]
            continue
        spec = specs.get(operation) or _derived_operation(route, ops, derived.queries)
        body = _body(ops, rules.get(operation), schemas)
        if body is not None:
            name, schema, content = body
            schemas[name] = schema
            spec = dataclasses.replace(spec, body=ref(name), body_content=content)
        resolved[operation] = spec
    clash = sorted(set(schemas) & set(SCHEMAS))
    if clash:
        raise LookupError(f"schemas both derived from the SDK and written by hand: {clash}")
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(
            route, resolved[route.operation], table
        )
    tags = sorted({spec.tag for spec in resolved.values()})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mistral Agents Gateway",
            "version": "1",
            "description": _DESCRIPTION,
            # Mistral's response shapes are this SDK version's models.
            "x-mistral-sdk-version": sdk_version(),
        },
        "tags": [{"name": tag} for tag in tags],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": f"{KEY_PREFIX} followed by 43 URL-safe characters",
                    "description": "A gateway API key. Its role decides what it may call.",
                }
            },
            "parameters": _shared_parameters(table),
            "headers": _HEADERS,
            "responses": _error_responses(),
            "schemas": {**SCHEMAS, **schemas},
        },
    }

"""The OpenAPI document: valid 3.1, the route table's routes exactly, and per-operation promises
(security and roles, errors, streams, bodies) derived from the code, not restated by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import referencing
from openapi_spec_validator import validate
from referencing.jsonschema import DRAFT202012

from shared.http import routes
from shared.openapi import OPERATIONS, build, document, document_bytes
from shared.openapi._build import FRONT_DOOR, derived_refusals
from shared.reads import _query
from shared.tenancy import keyadmin
from shared.tenancy.auth import OPERATION_PERMISSIONS, PUBLIC_OPERATIONS, ROLE_PERMISSIONS

DOC = document()
METHODS = ("get", "put", "post", "patch", "delete")


def operations(doc: dict[str, Any] = DOC) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def by_route() -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for method, path, operation in operations()}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` inside the document, followed."""
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at `pointer` inside the document (its $refs resolve)."""
    resource = referencing.Resource.from_contents(DOC, default_specification=DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource("urn:doc", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:doc#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def schema_ok(name: str, instance: Any) -> bool:
    return validator(f"/components/schemas/{name}").is_valid(instance)


# -- the document as a whole ------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    """The document passes the OpenAPI 3.1 specification validator."""
    assert DOC["openapi"] == "3.1.0"
    validate(DOC)


def test_methods_and_paths_are_the_front_doors() -> None:
    """The document has exactly the public routes' (method, path) pairs."""
    assert set(by_route()) == {(r.method, r.template) for r in routes.ROUTES if r.public}


def test_operation_ids_are_the_route_tables_operations() -> None:
    """Each operationId is the route's operation (with the function where several share one)."""
    for route in FRONT_DOOR:
        operation_id = by_route()[(route.method, route.template)]["operationId"]
        assert operation_id in (route.operation, f"{route.operation}.{route.function}")
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids))


def test_a_route_added_without_an_entry_fails_the_build() -> None:
    """A new route whose operation has no OpenAPI entry cannot be documented silently."""
    table = (*routes.ROUTES, routes.Route("GET", "/gateway/v1/widgets", "admin", "widgets.list"))
    with pytest.raises(LookupError, match=r"widgets\.list"):
        build(table)


def test_an_entry_whose_route_was_removed_fails_the_build() -> None:
    """An entry for an operation no route has any more is reported, not kept as a ghost."""
    table = tuple(r for r in routes.ROUTES if r.operation != "gateway.usage")
    with pytest.raises(LookupError, match=r"gateway\.usage"):
        build(table)
    specs = {k: v for k, v in OPERATIONS.items() if k != "gateway.usage"}
    assert "/gateway/v1/usage" not in build(table, specs)["paths"]


def test_routes_the_front_door_does_not_serve_are_not_documented() -> None:
    """The batch push, batch job sweep and batch health routes (the load balancer answers
    them 404/405) are not in the document; every documented operation names its function."""
    internal = [r for r in routes.ROUTES if not r.public]
    assert {r.template for r in internal} == {
        "/gateway/v1/batches/events",
        "/gateway/v1/batch/jobs/sweep",
        "/gateway/v1/health/batch",
    }
    for route in internal:
        assert (route.method, route.template) not in by_route()
    for route in FRONT_DOOR:
        assert by_route()[(route.method, route.template)]["x-function"] == route.function


def test_document_is_built_once_and_copies_are_independent() -> None:
    """The served bytes are built once per process; changing one copy changes no other."""
    assert document_bytes() is document_bytes()
    copy = document()
    copy["paths"].clear()
    assert document()["paths"]
    assert json.loads(document_bytes()) == DOC


# -- security, roles and errors per operation ---------------------------------------------------


def test_key_operations_need_bearer_and_name_their_permission_and_roles() -> None:
    """Every key-checked operation says its permission and the roles holding it; others are open."""
    for route in FRONT_DOOR:
        operation = by_route()[(route.method, route.template)]
        if route.public and route.operation not in PUBLIC_OPERATIONS:
            permission = OPERATION_PERMISSIONS[route.operation]
            assert "security" not in operation  # the document's default: bearerAuth
            assert operation["x-required-permission"] == permission
            holders = [r for r, held in ROLE_PERMISSIONS.items() if permission in held]
            assert operation["x-roles"] == holders
            assert {"401", "429", "503"} <= set(operation["responses"])
            spec = OPERATIONS.get(route.operation)
            refusals = spec.errors if spec else derived_refusals(route)
            forbidden = len(holders) < len(ROLE_PERMISSIONS) or 403 in refusals
            assert ("403" in operation["responses"]) is forbidden
        else:
            assert operation["security"] == []
            assert "401" not in operation["responses"]
    assert DOC["security"] == [{"bearerAuth": []}]
    assert DOC["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_read_only_may_only_read() -> None:
    """The read_only role is listed on reading operations only (never on a write)."""
    for method, _, operation in operations():
        if "read_only" in operation.get("x-roles", []):
            assert method == "GET", operation["operationId"]


def test_bodies_and_query_parameters_document_their_errors() -> None:
    """A body brings 400, 413, 415 and 422; query parameters 422; path ids 404."""
    for _, path, operation in operations():
        if operation.get("x-internal"):
            continue
        responses = set(operation["responses"])
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= responses, operation["operationId"]
        if any(resolve(p)["in"] == "query" for p in operation["parameters"]):
            assert "422" in responses, operation["operationId"]
        if "{" in path:
            assert "404" in responses, operation["operationId"]
        assert "405" in responses


def test_operations_calling_mistral_document_its_failures_and_refusals() -> None:
    """Upstream operations answer 502/503/504, and Mistral's own 4xx relayed; others never."""
    for route in FRONT_DOOR:
        responses = by_route()[(route.method, route.template)]["responses"]
        spec = OPERATIONS.get(route.operation)
        # A Mistral route without an entry is derived from the SDK, and calls Mistral.
        if spec.upstream if spec else route.mistral:
            assert {"502", "503", "504", "4XX"} <= set(responses), route.operation
            for status in (s for s in responses if s.startswith("4") and s != "4XX"):
                refused = resolve(responses[status])["content"]["application/json"]["schema"]
                assert {"$ref": "#/components/schemas/UpstreamError"} in refused["anyOf"]
        else:
            assert not {"502", "504", "4XX"} & set(responses), route.operation


def test_error_responses_carry_the_error_body_and_headers() -> None:
    """Every shared error answer is the gateway's error JSON (or Mistral's) with its headers."""
    for _, _, operation in operations():
        for status, reference in operation["responses"].items():
            # Inline ones are an operation's own (a health check's 503 names the dependency).
            if status[0] not in "45" or "$ref" not in reference:
                continue
            response = resolve(reference)
            schema = response["content"]["application/json"]["schema"]
            names = json.dumps(schema)
            assert "Error" in names, (operation["operationId"], status)
            headers = response["headers"]
            assert "X-Request-Id" in headers
            if status in ("429", "503"):
                assert resolve(headers["Retry-After"])["required"] is True
            if status == "401":
                assert "WWW-Authenticate" in headers
            if status == "405":
                assert "Allow" in headers


def test_turns_answer_json_or_an_event_stream() -> None:
    """Start, append and restart document text/event-stream frames beside the JSON answer."""
    streaming = {"conversations.start", "conversations.append", "conversations.restart"}
    # and the metered pass-through calls the SDK streams
    streaming |= {"chat.complete", "fim.complete", "agents.complete"}
    streaming |= {"audio.transcriptions.complete", "audio.speech.complete"}
    for _, _, operation in operations():
        content = operation["responses"].get("200", {}).get("content", {})
        assert ("text/event-stream" in content) is (operation["operationId"] in streaming)
        if operation["operationId"] in streaming:
            frame = resolve(content["text/event-stream"]["schema"])
            # One frame: `data` carries the JSON of one event (named, when the SDK names it),
            # or the sentinel that ends a stream the SDK reads to one (`[DONE]`).
            data = frame["properties"]["data"]
            kinds = [d for d in data.get("anyOf", [data]) if "const" not in d]
            assert [d["type"] for d in kinds] == ["string"], operation["operationId"]


# Deletes whose SDK method expects 200 with Mistral's body (files, libraries, accesses,
# batch jobs: shared/surface/sdk_operations.json names their response models).
_DELETES_WITH_A_BODY = frozenset(
    {"files.delete", "libraries.delete", "libraries.accesses.delete", "batch.jobs.delete"}
)


def test_deletes_answer_204_without_a_body() -> None:
    """Every DELETE but those the SDK reads a body from succeeds with exactly 204 and no content
    (the SDK accepts nothing else)."""
    for method, _, operation in operations():
        if method == "DELETE" and operation["operationId"] not in _DELETES_WITH_A_BODY:
            successes = {s for s in operation["responses"] if s.startswith("2")}
            assert successes == {"204"}
            assert "content" not in operation["responses"]["204"]


def test_every_answer_carries_x_request_id_and_key_answers_rate_limit_headers() -> None:
    """Success answers list X-Request-Id; those to key-checked requests also RateLimit-*."""
    for _, _, operation in operations():
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            headers = resolve(response)["headers"]
            assert resolve(headers["X-Request-Id"])["required"] is True
            limited = "x-required-permission" in operation
            assert ("RateLimit-Remaining" in headers) is limited


def test_mistral_response_schemas_never_forbid_unknown_fields() -> None:
    """Only the gateway's own key bodies refuse unknown fields; nothing Mistral answers does."""
    forbidding = {
        name
        for name, schema in DOC["components"]["schemas"].items()
        if '"additionalProperties": false' in json.dumps(schema)
    }
    assert forbidding == {
        "CreateKeyRequest",
        "UpdateKeyRequest",
        "RotateKeyRequest",
        "CreateTenantRequest",
        "UpdateTenantRequest",
    }


def test_documented_bounds_are_the_codes() -> None:
    """Page sizes, page numbers and key limits in the document are the code's own bounds."""
    from shared.openapi import _operations

    assert _operations.MISTRAL_PAGE_MAX == _query._MAX_PAGE
    assert _operations.KEY_PAGE_MAX == keyadmin._LIST_MAX
    limits = DOC["components"]["schemas"]["CreateKeyRequest"]["properties"]
    for name, minimum in keyadmin.LIMIT_FIELDS.items():
        assert limits[name]["minimum"] == minimum


# -- the schemas against the wire contract's examples -------------------------------------------


def test_wire_contract_examples_match_their_schemas() -> None:
    """The minimal bodies of the wire contract (section 10) are valid for their schemas."""
    response = {
        "object": "conversation.response",
        "conversation_id": "conv_0a1b2c",
        "outputs": [
            {
                "object": "entry",
                "type": "message.output",
                "id": "msg_1",
                "role": "assistant",
                "content": "pong",
                "model": "mistral-small-latest",
                "created_at": "2025-06-01T12:00:00Z",
                "completed_at": "2025-06-01T12:00:01Z",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    agent = {
        "object": "agent",
        "id": "ag_1",
        "model": "mistral-small-latest",
        "name": "probe",
        "version": 0,
        "versions": [0],
        "created_at": "2025-06-01T12:00:00Z",
        "updated_at": "2025-06-01T12:00:00Z",
        "deployment_chat": False,
        "source": "api",
        "tools": [],
    }
    assert schema_ok("ConversationRequest", {"inputs": "ping", "stream": False, "model": "m"})
    assert schema_ok("ConversationResponse", response)
    assert schema_ok("Agent", agent)
    result = {
        "inputs": [
            {"object": "entry", "type": "function.result", "tool_call_id": "c", "result": "sunny"}
        ],
        "stream": False,
        "store": True,
        "handoff_execution": "server",
    }
    assert schema_ok("ConversationAppendRequest", result)
    event = {"type": "message.output.delta", "id": "msg_1", "output_index": 0, "content": "po"}
    assert schema_ok("ConversationEvent", event)
    assert schema_ok(
        "ServerSentEvent", {"event": "message.output.delta", "data": json.dumps(event)}
    )


def test_unknown_fields_and_entry_types_pass_known_ones_are_checked() -> None:
    """A newer Mistral field or entry type conforms; a known entry missing its content does not."""
    assert schema_ok("Entry", {"type": "message.thinking", "id": "x", "anything": [1]})
    assert schema_ok("Entry", {"type": "message.output", "content": "hi", "new_field": {"a": 1}})
    assert not schema_ok("Entry", {"type": "message.output", "id": "x"})
    assert not schema_ok("ConversationEvent", {"type": "conversation.response.done"})
    assert schema_ok(
        "ConversationEvent", {"type": "conversation.response.error", "message": "m", "code": 502}
    )


def test_request_schemas_refuse_what_the_gateway_refuses() -> None:
    """Model and agent together, an empty append, blank names and unknown key fields are invalid."""
    assert not schema_ok("ConversationRequest", {"inputs": "x", "model": "m", "agent_id": "a"})
    assert not schema_ok("ConversationRequest", {"inputs": "x"})
    assert schema_ok("ConversationRequest", {"inputs": "x", "agent_id": "a", "model": None})
    assert not schema_ok("ConversationRequest", {"inputs": "bell \x07", "model": "m"})
    assert not schema_ok("ConversationAppendRequest", {"tool_confirmations": []})
    assert not schema_ok("ConversationAppendRequest", {"tool_confirmations": None})
    assert not schema_ok("CreateAgentRequest", {"model": "m", "name": " \t"})
    assert not schema_ok("CreateKeyRequest", {"name": "k", "role": "user", "rate_limit": 5})
    assert not schema_ok("CreateKeyRequest", {"name": "k", "role": "owner"})
    assert schema_ok("CreateKeyRequest", {"name": "k", "role": "user", "rate_limit_window": None})


_RECORD = {"id": "c", "created_at": "2025-06-01T12:00:00Z", "updated_at": "2025-06-01T12:00:00Z"}
_AGENT = {
    "object": "agent",
    "id": "ag_1",
    "model": "m",
    "name": "n",
    "version": 0,
    "versions": [0],
    "created_at": "2025-06-01T12:00:00Z",
    "updated_at": "2025-06-01T12:00:00Z",
    "deployment_chat": False,
    "source": "api",
}
_SAMPLES: list[tuple[str, Any]] = [
    ("Conversation", {**_RECORD, "agent_id": "ag", "agent_version": 2}),
    ("Conversation", {**_RECORD, "model": "m", "tools": None}),
    ("Conversation", _RECORD),
    ("Conversation", {**_RECORD, "model": "m", "tools": [{"type": "future_tool"}]}),
    ("Agent", _AGENT),
    ("Agent", {**_AGENT, "versions": None}),
    ("Agent", {k: v for k, v in _AGENT.items() if k != "source"}),
    ("AgentListPage", {"data": [_AGENT], "next_page_token": None}),
    ("ConversationUsageInfo", {}),
    ("ConversationUsageInfo", {"prompt_tokens": "many"}),
    ("ConversationResponse", {"conversation_id": "c", "outputs": [], "usage": {}}),
    ("ConversationResponse", {"conversation_id": "c", "outputs": []}),
    ("ConversationHistory", {"conversation_id": "c", "entries": []}),
    ("AgentAliasResponse", {"alias": "a", "version": 1, "created_at": "2025-06-01T12:00:00Z"}),
]


@pytest.mark.parametrize(("name", "body"), _SAMPLES)
def test_mistral_response_shapes_accept_what_the_sdk_parses(name: str, body: Any) -> None:
    """The document's Mistral response schemas are the SDK's: a body validates against the
    document exactly when the SDK's model parses it."""
    from mistralai.client import models
    from pydantic import TypeAdapter, ValidationError

    from shared.openapi._mistral import RESPONSES

    try:
        TypeAdapter(getattr(models, RESPONSES[name])).validate_python(body)
        parses = True
    except ValidationError:
        parses = False
    assert schema_ok(name, body) is parses


def test_the_document_names_the_sdk_its_shapes_come_from() -> None:
    """info.x-mistral-sdk-version is the installed mistralai's version."""
    import importlib.metadata

    assert DOC["info"]["x-mistral-sdk-version"] == importlib.metadata.version("mistralai")


def test_group_by_pattern_matches_what_usage_accepts() -> None:
    """The documented group_by pattern agrees with tenancy.usage on accepted and refused values."""
    from shared.errors import ValidationFailed
    from shared.tenancy.keys import Principal
    from shared.tenancy.usage import parse_query

    schema = next(
        resolve(p)["schema"]
        for p in by_route()[("GET", "/gateway/v1/usage")]["parameters"]
        if resolve(p)["name"] == "group_by"
    )
    check = jsonschema.Draft202012Validator(schema)
    for value in ("", "day", "key, agent ,", ",,", "days", "day;key", "\u3000model", "mo del"):
        try:
            parse_query({"group_by": value}, caller=Principal("k", "t", "n", "admin", "p"))
            accepted = True
        except ValidationFailed:
            accepted = False
        assert check.is_valid(value) is accepted, value


def test_blank_names_agree_with_python_strip() -> None:
    """A key name the document calls blank is one the gateway strips to nothing, and back."""
    schema = DOC["components"]["schemas"]["CreateKeyRequest"]["properties"]["name"]
    check = jsonschema.Draft202012Validator(schema)
    for value in (" ", "\x1c", "\u2003", "\ufeff", "a", " b ", "\u0085"):
        assert check.is_valid(value) is bool(value.strip()), repr(value)


def test_events_and_entries_are_open_unions_of_the_sdks_variants() -> None:
    """A known event or entry type must have the SDK's shape for it; an unknown one passes."""
    delta = {"type": "message.output.delta", "id": "m", "content": "Hel"}
    assert schema_ok("ConversationEvent", delta)
    assert not schema_ok("ConversationEvent", {k: v for k, v in delta.items() if k != "id"})
    assert schema_ok("ConversationEvent", {"type": "a.future.event", "anything": 1})
    assert not schema_ok("ConversationEvent", {"no": "type"})
    call = {"type": "function.call", "tool_call_id": "c", "name": "f", "arguments": "{}"}
    assert schema_ok("Entry", call)
    assert not schema_ok("Entry", {**call, "tool_call_id": 5})
    assert schema_ok("Entry", {"type": "message.thinking", "content": []})

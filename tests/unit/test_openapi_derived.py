"""Mistral routes documented from the SDK alone: a route another helper adds (chat, files,
models, libraries) gets its whole entry from sdk_operations.json and the SDK's models, and the
gateway's own refusals come from the code that refuses them."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema
import pytest
import referencing
from openapi_spec_validator import validate
from referencing.jsonschema import DRAFT202012

from shared.http import routes
from shared.openapi import OPERATIONS, build
from shared.openapi._schemas import ref
from shared.tenancy import auth

# Routes that are not on this branch: each is documented with no entry in _operations.
_NEW = (
    routes.Route("POST", "/v1/chat/completions", "start", "chat.complete"),
    routes.Route("POST", "/v1/files", "admin", "files.upload"),
    routes.Route("DELETE", "/v1/files/{file_id}", "admin", "files.delete"),
    routes.Route("GET", "/v1/models", "admin", "models.list"),
    routes.Route(
        "GET", "/v1/libraries/{library_id}/documents", "admin", "libraries.documents.list"
    ),
)


@pytest.fixture
def doc(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for route in _NEW:
        monkeypatch.setitem(auth.OPERATION_PERMISSIONS, route.operation, "agents:read")
    return build((*routes.ROUTES, *_NEW))


def _op(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = doc["paths"][path][method]
    return operation


def _validator(doc: dict[str, Any], pointer: str) -> jsonschema.Draft202012Validator:
    resource = referencing.Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource("urn:doc", resource)
    return jsonschema.Draft202012Validator({"$ref": f"urn:doc#{pointer}"}, registry=registry)


def test_routes_without_an_entry_are_derived_from_the_sdk(doc: dict[str, Any]) -> None:
    """Summary, tag, body, 200 and event stream of a new Mistral route come from the SDK."""
    validate(doc)
    chat = _op(doc, "post", "/v1/chat/completions")
    assert chat["summary"] == "Mistral's chat.complete"
    assert chat["tags"] == ["Chat"]
    assert chat["requestBody"]["content"] == {
        "application/json": {"schema": ref("ChatCompletionRequest")}
    }
    body = doc["components"]["schemas"]["ChatCompletionRequest"]
    # The plain and the #stream models merged: `stream` takes either model's schema.
    stream = doc["components"]["schemas"]["Mistral.Request.ChatCompletionStreamRequest"]
    assert stream["properties"]["stream"] in body["properties"]["stream"]["anyOf"]
    assert set(body["properties"]) == set(stream["properties"])
    content = chat["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == ref("Mistral.ChatCompletionResponse")
    frame = content["text/event-stream"]["schema"]
    # The SDK's CompletionEvent is the whole event: `data:` holds its `data` (a chunk), and
    # the stream's last event is the `[DONE]` the SDK reads to.
    done, chunk = frame["properties"]["data"]["anyOf"]
    assert done == {"const": "[DONE]"}
    assert chunk["contentSchema"] == {
        "$ref": ref("Mistral.CompletionEvent")["$ref"] + "/properties/data"
    }
    event = doc["components"]["schemas"]["Mistral.CompletionEvent"]
    assert event["properties"]["data"] == ref("Mistral.CompletionChunk")
    assert {"400", "401", "422", "429", "502", "4XX"} <= set(chat["responses"])
    assert "Mistral.Request.ChatCompletionRequest" in doc["components"]["schemas"]


def test_a_derived_request_body_is_the_sdks_model(doc: dict[str, Any]) -> None:
    """The derived chat body accepts what the SDK's model accepts and refuses what it refuses."""
    check = _validator(doc, "/components/schemas/ChatCompletionRequest")
    assert check.is_valid({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert check.is_valid(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    assert not check.is_valid({"messages": [{"role": "user", "content": "hi"}]})
    assert not check.is_valid({"model": "m", "messages": "hi", "temperature": "hot"})


def test_multipart_list_query_and_delete_are_derived(doc: dict[str, Any]) -> None:
    """A multipart upload has a multipart body with a binary file; a list route has the SDK's
    query parameters; a delete answers the SDK's response model."""
    upload = _op(doc, "post", "/v1/files")
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    parts = doc["components"]["schemas"]["Mistral.Request.MultiPartBodyParams"]
    assert parts["properties"]["file"] == {"type": "string", "format": "binary"}
    documents = _op(doc, "get", "/v1/libraries/{library_id}/documents")
    names = {p.get("name") for p in documents["parameters"]}
    assert {"page_size", "page", "search"} <= names
    assert "requestBody" not in documents
    assert "404" in documents["responses"]
    deleted = _op(doc, "delete", "/v1/files/{file_id}")
    schema = deleted["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == ref("Mistral.DeleteFileResponse")
    models = _op(doc, "get", "/v1/models")
    assert models["responses"]["200"]["content"]["application/json"]["schema"] == ref(
        "Mistral.ModelList"
    )


def test_list_answers_are_arrays_of_the_sdks_model() -> None:
    """agents.list (the SDK parses List[Agent]) is documented as an array of agents."""
    from shared.openapi import document

    schema = document()["paths"]["/v1/agents"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert schema["type"] == "array"


def test_a_mistral_route_the_sdk_lacks_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Mistral path no SDK operation has cannot be derived, so it fails like a missing entry."""
    monkeypatch.setitem(auth.OPERATION_PERMISSIONS, "widgets.list", "agents:read")
    table = (*routes.ROUTES, routes.Route("GET", "/v1/widgets", "admin", "widgets.list"))
    with pytest.raises(LookupError, match=r"widgets\.list"):
        build(table)


def test_a_mistral_entry_may_not_write_its_own_body() -> None:
    """An explicit entry for a Mistral route that hand-writes the body fails the build."""
    specs = dict(OPERATIONS)
    specs["agents.create"] = dataclasses.replace(specs["agents.create"], body={"type": "object"})
    with pytest.raises(LookupError, match=r"agents\.create"):
        build(None, specs)


def test_request_bodies_are_what_the_sdk_sends_and_mistral_takes() -> None:
    """In request bodies an open enum is closed, a tag is required, and Mistral's own rules
    (SERVER_RULES) apply; the same models on the response side stay as open as the SDK."""
    from shared.openapi import document

    doc = document()
    body = _validator(doc, "/components/schemas/ConversationRequest")
    ok = {"model": "m", "inputs": [{"type": "message.input", "role": "user", "content": "hi"}]}
    assert body.is_valid(ok)
    assert not body.is_valid({**ok, "inputs": [{**ok["inputs"][0], "role": "robot"}]})
    untagged = {"role": "user", "content": "hi"}
    assert not body.is_valid({**ok, "inputs": [untagged]})
    assert not body.is_valid({**ok, "completion_args": {"max_tokens": -1}})
    assert body.is_valid({**ok, "completion_args": {"max_tokens": 0}})
    entry = _validator(doc, "/components/schemas/Mistral.MessageInputEntry")
    assert entry.is_valid({"type": "message.input", "role": "robot", "content": "hi"})
    args = _validator(doc, "/components/schemas/Mistral.CompletionArgs")
    assert args.is_valid({"max_tokens": -1})


def test_only_the_rotate_body_may_be_left_out() -> None:
    """Rotating a key takes no body (no grace window); every other body is required."""
    from shared.openapi import document

    bodies = {
        (method, path): operation["requestBody"]["required"]
        for path, item in document()["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }
    assert {k for k, required in bodies.items() if not required} == {
        ("post", "/gateway/v1/keys/{key_id}/rotate")
    }

"""The history function serves the OpenAPI document: to anyone, as JSON, the same each time."""

from __future__ import annotations

from shared.container import Container
from shared.openapi import document
from tests.support import client, error_code

PATH = "/gateway/v1/openapi.json"


def test_the_document_is_served_without_a_key(container: Container) -> None:
    """GET /gateway/v1/openapi.json answers 200 application/json with the document, no key."""
    answer = client("history").get(PATH)
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.get_json() == document()
    assert answer.headers["X-Request-Id"]
    assert "max-age" in answer.headers["Cache-Control"]


def test_the_document_ignores_a_bad_key(container: Container) -> None:
    """A wrong Authorization header does not stop the open document from being served."""
    answer = client("history").get(PATH, headers={"Authorization": "Bearer mgw_nope"})
    assert answer.status_code == 200


def test_the_document_is_the_same_bytes_each_time(container: Container) -> None:
    """Two requests get byte-identical documents (built once per process)."""
    first = client("history").get(PATH).get_data()
    assert client("history").get(PATH).get_data() == first


def test_the_document_route_answers_405_to_other_methods(container: Container) -> None:
    """POST to the document's path is 405 in the gateway's error shape, naming GET."""
    answer = client("history").post(PATH)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET"
    assert error_code(answer.get_json()) == "method_not_allowed"


def test_the_served_document_lists_every_function_route(container: Container) -> None:
    """The document the history function serves documents the start and admin routes too."""
    paths = client("history").get(PATH).get_json()["paths"]
    assert "post" in paths["/v1/conversations"]
    assert "put" in paths["/v1/agents/{agent_id}/aliases"]
    assert "/gateway/v1/batches/events" not in paths

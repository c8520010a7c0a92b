"""The local router's own answers (no route, wrong method, not exposed) are the gateway's errors."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug.test import Client

from devstack.router import Router
from shared.surface import Treatment, operations
from tests.support import error_code


def _router() -> Client:
    # No backend is reached: every request here is answered by the router itself.
    return Client(Router({"start": "http://127.0.0.1:9", "history": "http://127.0.0.1:9"}))


def test_no_route_is_404_with_a_request_id_and_mistrals_error_shape() -> None:
    """An unknown path is 404 route_not_found, with X-Request-Id in header and body."""
    answer = _router().get("/nowhere")
    assert answer.status_code == 404
    body = json.loads(answer.get_data())
    assert error_code(body) == "route_not_found"
    assert answer.headers["X-Request-Id"] == body["request_id"]


def test_a_wrong_method_is_405_echoing_the_callers_request_id() -> None:
    """A known path with another method is 405 with Allow and the caller's request id."""
    answer = _router().put("/v1/conversations", headers={"X-Request-Id": "mine-1"})
    assert answer.status_code == 405
    assert answer.headers["X-Request-Id"] == "mine-1"
    assert "GET" in answer.headers["Allow"]
    assert error_code(json.loads(answer.get_data())) == "method_not_allowed"


def _sample(path: str) -> str:
    """An SDK path template with each parameter filled in."""
    return re.sub(r"\{[A-Za-z_]+\}", "x1", path)


NOT_EXPOSED = [op for op in operations() if op.treatment is Treatment.NOT_EXPOSED]


def test_a_not_exposed_sdk_operation_is_403_naming_it_without_a_key() -> None:
    """GET /v1/users/me (beta.users.get_identity) is 403 not_exposed, before any key is read."""
    answer = _router().get("/v1/users/me", headers={"X-Request-Id": "mine-2"})
    assert answer.status_code == 403
    body = json.loads(answer.get_data())
    assert error_code(body) == "not_exposed"
    assert body["type"] == "invalid_request_error"
    assert body["message"].startswith("beta.users.get_identity is not exposed by this gateway")
    assert answer.headers["X-Request-Id"] == body["request_id"] == "mine-2"


def test_every_not_exposed_sdk_operation_is_403_not_exposed_from_the_router() -> None:
    """Each of the SDK's not-exposed operations (229 of mistralai 3.7.0) is refused by name."""
    assert len(NOT_EXPOSED) == 229
    router = _router()
    wrong = {}
    for op in NOT_EXPOSED:
        answer = router.open(_sample(op.path), method=op.method)
        body = json.loads(answer.get_data())
        if answer.status_code != 403 or body.get("code") != "not_exposed":
            wrong[op.name] = (answer.status_code, body.get("code"))
        elif not body["message"].startswith(f"{op.name} is not exposed"):
            wrong[op.name] = (answer.status_code, body["message"])
    assert wrong == {}


def test_a_method_mistral_does_not_have_on_a_not_exposed_path_is_still_405_or_404() -> None:
    """Only the SDK's own method and path are not_exposed: PUT /v1/users/me is a plain 404."""
    answer = _router().put("/v1/users/me")
    assert answer.status_code == 404
    assert error_code(json.loads(answer.get_data())) == "route_not_found"


@pytest.mark.parametrize("path", ["/v1/nothing-mistral-has", "/v1/users/me/more", "/v2/users/me"])
def test_unknown_paths_are_still_404_route_not_found(path: str) -> None:
    """A path no route and no SDK operation has stays 404 route_not_found."""
    answer = _router().get(path)
    assert answer.status_code == 404
    assert error_code(json.loads(answer.get_data())) == "route_not_found"

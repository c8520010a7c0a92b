"""The local router's own answers (no route, wrong method) are the gateway's errors."""

from __future__ import annotations

import json

from werkzeug.test import Client

from devstack.router import Router
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

"""The request pipeline every function shares: routing, keys, roles, errors."""

from __future__ import annotations

import pytest

from shared.container import Container
from shared.http import routes
from tests.support import bearer, client, error_code, make_key

HTTP_FUNCTIONS = ("start", "history", "admin", "batch")


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_health_checks_real_dependencies(container: Container, function: str) -> None:
    """Each function's health route answers 200 after pinging PostgreSQL and Redis."""
    answer = client(function).get(routes.health_path(function))
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is True


@pytest.mark.parametrize("function", ["start", "history", "admin"])
def test_missing_key_is_401_on_every_function(container: Container, function: str) -> None:
    """A request without Authorization gets 401 in the error shape, with a request id."""
    route = next(r for r in routes.routes_for(function) if r.operation != "gateway.health")
    path = route.template.format(
        conversation_id="conv_x", agent_id="ag_x", key_id="k", batch_id="b", version="1"
    )
    answer = client(function).open(path, method=route.method)
    assert answer.status_code == 401
    body = answer.get_json()
    assert error_code(body) == "unauthorized"
    assert body["request_id"] == answer.headers["X-Request-Id"]


def test_malformed_and_unknown_keys_are_401(container: Container) -> None:
    """Wrong scheme, a non-gateway token and an unknown gateway key all get 401."""
    app = client("history")
    for header in ("Basic abc", "Bearer", "Bearer sk-mistral-key", "Bearer mgw_" + "A" * 43):
        answer = app.get("/v1/conversations", headers={"Authorization": header})
        assert answer.status_code == 401, header


def test_revoked_key_is_401(container: Container) -> None:
    """A revoked key stops working once the cache entry is refreshed."""
    key = make_key(container, "user")
    assert client("history").get(routes.health_path("history")).status_code == 200
    with container.pool.connection() as conn:
        conn.run("UPDATE api_keys SET revoked_at = now() WHERE id = :id", id=key.principal.key_id)
    container.keys.forget()
    answer = client("history").get("/v1/conversations", headers=bearer(key))
    assert answer.status_code == 401


def test_role_without_permission_is_403(container: Container) -> None:
    """A read_only key may not start a conversation."""
    key = make_key(container, "read_only")
    answer = client("start").post(
        "/v1/conversations", json={"inputs": "hi", "model": "m"}, headers=bearer(key)
    )
    assert answer.status_code == 403
    assert error_code(answer.get_json()) == "forbidden"


def test_unknown_path_is_404_and_wrong_method_is_405(container: Container) -> None:
    """Paths outside the table get 404; a known path with another method gets 405 + Allow."""
    app = client("history")
    assert app.get("/v1/nothing").status_code == 404
    answer = app.put("/v1/conversations")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET"
    assert error_code(answer.get_json()) == "method_not_allowed"


def test_answers_carry_rate_limit_headers(container: Container) -> None:
    """An authenticated request gets RateLimit-Limit, -Remaining and -Reset."""
    key = make_key(container, "user", rate_limit_requests=10, rate_limit_window=60)
    answer = client("history").get("/v1/conversations", headers=bearer(key))
    assert answer.headers["RateLimit-Limit"] == "10"
    assert answer.headers["RateLimit-Remaining"] == "9"

"""The route table and its matcher."""

from shared.http import routes


def test_mistral_paths_go_to_their_functions() -> None:
    """Each Mistral method and path reaches the function DESIGN section 2 names."""
    cases = {
        ("POST", "/v1/conversations"): "start",
        ("POST", "/v1/conversations/conv_1"): "start",
        ("POST", "/v1/conversations/conv_1/restart"): "start",
        ("GET", "/v1/conversations"): "history",
        ("GET", "/v1/conversations/conv_1"): "history",
        ("GET", "/v1/conversations/conv_1/history"): "history",
        ("GET", "/v1/conversations/conv_1/messages"): "history",
        ("DELETE", "/v1/conversations/conv_1"): "admin",
        ("POST", "/v1/agents"): "admin",
        ("GET", "/v1/agents/pages"): "admin",
        ("PUT", "/v1/agents/ag_1/aliases"): "admin",
        ("GET", "/v1/agents/ag_1/versions/3"): "admin",
    }
    for (method, path), function in cases.items():
        found = routes.match(method, path)
        assert found.route is not None, (method, path)
        assert found.route.function == function, (method, path)


def test_path_parameters_are_extracted() -> None:
    """Template parameters come back by name."""
    found = routes.match("GET", "/v1/agents/ag_9/versions/2")
    assert found.params == {"agent_id": "ag_9", "version": "2"}


def test_wrong_method_reports_the_allowed_ones() -> None:
    """A known path with an unknown method lists the methods it allows (for 405)."""
    found = routes.match("PUT", "/v1/conversations/conv_1")
    assert found.route is None
    assert found.allowed == ("DELETE", "GET", "POST")


def test_unknown_paths_match_nothing() -> None:
    """Paths outside the table, and ids with slashes, do not match."""
    assert routes.match("GET", "/v2/conversations").route is None
    assert routes.match("GET", "/v1/conversations/a/b/c").route is None
    assert routes.match("GET", "/v1/conversations/conv_1/").route is None


def test_gateway_routes_live_in_their_own_namespace() -> None:
    """Every non-Mistral route starts with the gateway prefix, never /v1/."""
    for route in routes.ROUTES:
        assert route.template.startswith("/v1/") != route.template.startswith("/gateway/")


def test_each_function_has_a_health_route_and_operations_are_unique() -> None:
    """Every function answers a health route; no method and path is listed twice."""
    for function in routes.FUNCTIONS:
        found = routes.match("GET", routes.health_path(function))
        assert found.route is not None
        assert found.route.function == function
    keys = [(r.method, r.template) for r in routes.ROUTES]
    assert len(keys) == len(set(keys))

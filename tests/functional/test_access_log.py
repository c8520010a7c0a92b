"""The access line through a real FunctionApp: one per request, typed, correlated, no secrets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flask
import pytest

from shared.config import Settings
from shared.container import Container
from shared.http import routes
from shared.http.web import Context, FunctionApp, Handler, json_response
from shared.observability import (
    ACCESS_LINE_FIELDS,
    bind_http_request,
    capture_logs,
    clear_request,
    configure_logging,
    deferred_stream,
    emit_access,
    emit_unrouted_access,
    log_event,
    reset_logging,
)
from shared.observability import access_log as access_hook

PROJECT = "test-proj"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEALTH = routes.health_path("history")
GATEWAY_KEY = "mgw_" + "k" * 43
# Keys Cloud Logging's structured format puts on every line, beside the jsonPayload.
STRUCTURED = {
    "message",
    "severity",
    "httpRequest",
    "logging.googleapis.com/labels",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "logging.googleapis.com/sourceLocation",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def health(ctx: Context) -> flask.Response:
    """The health operation, plus one ordinary log line, plus the fields a handler sets."""
    log_event("probe")
    if ctx.query("fields"):
        access = ctx.access
        access.agent_id, access.model = "ag_123", "mistral-small-latest"
        access.conversation_id, access.tokens_in, access.tokens_out = "conv_456", 12, 34
        access.upstream_latency_ms = 5  # an int where a float is declared: written as one
        access.idempotent_replay, access.circuit, access.owner = True, "closed", None
        access.stored = False  # a field of the request, not of its access line
    return json_response({"ok": True})


def boom(ctx: Context) -> flask.Response:
    raise RuntimeError(f"unexpected, while holding {GATEWAY_KEY}")


def streaming(ctx: Context) -> flask.Response:
    def chunks() -> Iterator[bytes]:
        yield b"data: one\n\n"
        log_event("chunk_sent")
        ctx.access.tokens_out = 7
        yield b"data: [DONE]\n\n"

    return flask.Response(deferred_stream(ctx, chunks()), content_type="text/event-stream")


def _handlers(**overrides: Handler) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {
        r.operation: lambda ctx: json_response({}) for r in routes.routes_for("history")
    }
    handlers["gateway.health"] = health
    handlers["gateway.openapi"] = boom
    handlers.update(overrides)
    return handlers


def _server(app: FunctionApp) -> flask.Flask:
    """The function behind Flask, with the request's log context bound around it.

    FunctionApp has no hook before route matching and auth, so the binding lives in
    this wrapper; it uses the caller's X-Request-Id, which FunctionApp also adopts.
    """
    server = flask.Flask(__name__)

    @server.route("/", defaults={"path": ""}, methods=METHODS)
    @server.route("/<path:path>", methods=METHODS)
    def entry(path: str) -> flask.Response:
        request = flask.request
        bind_http_request(
            request, request_id=request.headers.get("X-Request-Id", ""), function=app.function
        )
        try:
            return app(request)
        finally:
            clear_request()

    return server


@pytest.fixture
def client() -> Iterator[Callable[..., flask.testing.FlaskClient]]:
    """A test client for a history FunctionApp with the access line as its after hook."""
    settings = Settings(gcp_project=PROJECT)
    configure_logging(settings)

    def build(**overrides: Handler) -> flask.testing.FlaskClient:
        app = FunctionApp(
            "history",
            _handlers(**overrides),
            # The same settings: a FunctionApp that configures logging itself sees this project.
            container=lambda: Container(settings),
            after=[access_hook],
        )
        return _server(app).test_client()

    yield build
    reset_logging()


def _get(
    client: flask.testing.FlaskClient, path: str, headers: Mapping[str, str] | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    with capture_logs() as logs:
        response = client.get(path, headers={"X-Request-Id": "req_test_1", **(headers or {})})
        response.get_data()
    return response, logs


def _access(logs: list[dict[str, Any]]) -> dict[str, Any]:
    lines = [line for line in logs if line.get("event") == "access"]
    assert len(lines) == 1, lines
    return lines[0]


def test_health_request_writes_exactly_one_access_line(client: Callable[..., Any]) -> None:
    """GET health: one INFO access line with function, route template, method, status, latency."""
    response, logs = _get(client(), HEALTH)
    assert response.status_code == 200
    line = _access(logs)
    assert line["severity"] == "INFO"
    assert line["function"] == "history"
    assert line["route"] == HEALTH
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["latency_ms"], float)
    assert line["latency_ms"] >= 0
    assert line["request_id"] == "req_test_1" == response.headers["X-Request-Id"]
    assert line["httpRequest"]["requestMethod"] == "GET"
    assert line["httpRequest"]["status"] == 200
    assert line["httpRequest"]["latency"].endswith("s")
    assert "error_type" not in line


def test_access_line_holds_only_the_declared_fields(client: Callable[..., Any]) -> None:
    """Handler fields come out typed; None ones and those not of the line are left out."""
    _, logs = _get(client(), HEALTH + "?fields=1")
    line = _access(logs)
    assert set(line) - STRUCTURED <= ACCESS_LINE_FIELDS
    assert line["agent_id"] == "ag_123"
    assert line["model"] == "mistral-small-latest"
    assert line["conversation_id"] == "conv_456"
    assert (line["tokens_in"], line["tokens_out"]) == (12, 34)
    assert line["upstream_latency_ms"] == 5.0
    assert isinstance(line["upstream_latency_ms"], float)
    assert line["idempotent_replay"] is True
    assert line["circuit"] == "closed"
    assert "owner" not in line
    assert "stored" not in line


def test_traceparent_correlates_every_line_of_the_request(client: Callable[..., Any]) -> None:
    """With traceparent, the handler's line and the access line share trace, span and id."""
    _, logs = _get(client(), HEALTH, {"traceparent": f"00-{TRACE}-{SPAN}-01"})
    assert [line.get("event") for line in logs] == ["probe", "access"]
    for line in logs:
        assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE}"
        assert line["logging.googleapis.com/spanId"] == SPAN
        assert line["logging.googleapis.com/trace_sampled"] is True
        assert line["request_id"] == "req_test_1"


def test_cloud_trace_context_correlates_every_line(client: Callable[..., Any]) -> None:
    """With X-Cloud-Trace-Context, the decimal span is written as 16 hex digits."""
    _, logs = _get(client(), HEALTH, {"X-Cloud-Trace-Context": f"{TRACE}/42;o=1"})
    for line in logs:
        assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE}"
        assert line["logging.googleapis.com/spanId"] == f"{42:016x}"


def test_malformed_trace_headers_leave_lines_uncorrelated(client: Callable[..., Any]) -> None:
    """Garbage in both trace headers gives no trace, and the request is served as usual."""
    response, logs = _get(
        client(), HEALTH, {"traceparent": "00-nonsense", "X-Cloud-Trace-Context": "nonsense/1"}
    )
    assert response.status_code == 200
    for line in logs:
        assert line["logging.googleapis.com/trace"] == ""
        assert line["logging.googleapis.com/spanId"] == ""
        assert line["request_id"] == "req_test_1"


def test_client_error_is_a_warning_with_its_error_type(client: Callable[..., Any]) -> None:
    """A request without a key: 401, one WARNING access line naming the error type."""
    response, logs = _get(client(), "/v1/conversations", {"Authorization": "Bearer nonsense"})
    assert response.status_code == 401
    line = _access(logs)
    assert line["severity"] == "WARNING"
    assert line["status"] == 401
    assert line["route"] == "/v1/conversations"
    assert line["error_type"] == "unauthorized"
    assert "nonsense" not in json.dumps(logs)


def test_unexpected_exception_is_logged_once_and_never_returned(
    client: Callable[..., Any],
) -> None:
    """A handler crash: 500 without a traceback, one ERROR line with it, one ERROR access line."""
    response, logs = _get(client(), "/gateway/v1/openapi.json")
    assert response.status_code == 500
    assert "Traceback" not in response.get_data(as_text=True)
    crashes = [line for line in logs if line.get("event") == "exception"]
    assert len(crashes) == 1
    assert crashes[0]["severity"] == "ERROR"
    assert crashes[0]["request_id"] == "req_test_1"
    assert "Traceback (most recent call last)" in crashes[0]["stack_trace"]
    assert "RuntimeError" in crashes[0]["stack_trace"]
    line = _access(logs)
    assert line["severity"] == "ERROR"
    assert line["error_type"] == "internal_error"
    assert "exception" not in line
    assert GATEWAY_KEY not in json.dumps(logs)


def test_streamed_response_logs_its_access_line_when_the_stream_ends(
    client: Callable[..., Any],
) -> None:
    """A deferred line is written after the last chunk, in the request's context, once."""
    response, logs = _get(
        client(**{"gateway.health": streaming}), HEALTH, {"traceparent": f"00-{TRACE}-{SPAN}-01"}
    )
    assert response.get_data() == b"data: one\n\ndata: [DONE]\n\n"
    assert [line.get("event") for line in logs] == ["chunk_sent", "access"]
    line = _access(logs)
    assert line["tokens_out"] == 7
    assert line["request_id"] == "req_test_1"
    assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE}"
    assert line["httpRequest"]["responseSize"] == str(len(response.get_data()))


def test_access_line_is_written_once_however_often_it_is_emitted(
    client: Callable[..., Any],
) -> None:
    """emit_access after the hook already wrote the line writes nothing more."""
    seen: list[Context] = []

    def keep(ctx: Context) -> flask.Response:
        seen.append(ctx)
        return json_response({"ok": True})

    _, logs = _get(client(**{"gateway.health": keep}), HEALTH)
    with capture_logs() as again:
        emit_access(seen[0], 200)
    assert len([line for line in logs if line.get("event") == "access"]) == 1
    assert again == []


def test_unknown_route_gets_one_access_line(client: Callable[..., Any]) -> None:
    """An unmatched path still gets its one WARNING access line, without a route field."""
    response, logs = _get(client(), "/v1/nowhere")
    assert response.status_code == 404
    line = _access(logs)
    assert line["severity"] == "WARNING"
    assert "route" not in line


def test_unrouted_access_line_has_status_and_no_route() -> None:
    """emit_unrouted_access (for 404/405 before a route matched) leaves out the route."""
    configure_logging(Settings(gcp_project=PROJECT))
    try:
        app = flask.Flask(__name__)
        with app.test_request_context("/v1/nowhere?x=1", method="GET"), capture_logs() as logs:
            emit_unrouted_access(
                flask.request,
                function="history",
                status=404,
                started=time.perf_counter(),
                request_id="req_404",
                error_type="not_found",
            )
    finally:
        reset_logging()
    line = _access(logs)
    assert line["status"] == 404
    assert line["severity"] == "WARNING"
    assert line["error_type"] == "not_found"
    assert "route" not in line
    assert line["httpRequest"]["requestUrl"].endswith("/v1/nowhere?x=1")

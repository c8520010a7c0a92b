"""The access line's own path writes the same line as google-cloud-logging's handler."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import google.cloud.logging_v2
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.config import Settings
from shared.observability import (
    REDACTED,
    AccessFields,
    _events,
    bind_http_request,
    clear_request,
    configure_logging,
    deferred_stream,
    emit_access,
    emit_unrouted_access,
    reset_logging,
)
from shared.observability._handler import GatewayLogHandler
from shared.observability._state import STATE

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_KEY = "mgw_" + "k" * 43
MISTRAL_KEY = "mistral-upstream-key-0123456789"
SOURCE = "sourceLocation"


@pytest.fixture(autouse=True)
def _logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Logging configured with a project and a registered secret; a fixed clock."""
    configure_logging(Settings(gcp_project="proj", mistral_api_key=MISTRAL_KEY))
    monkeypatch.setattr(_events, "time", SimpleNamespace(perf_counter=lambda: 100.25))
    # The library's one-off diagnostic line is written (once a process) before the first.
    monkeypatch.setattr(google.cloud.logging_v2, "_instrumentation_emitted", True)
    yield
    clear_request()
    reset_logging()


def _request(path: str = "/v1/conversations", method: str = "POST", **options: Any) -> Request:
    request: Request = EnvironBuilder(path=path, method=method, **options).get_request()
    return request


def _ctx(request: Request, template: str = "/v1/conversations", **fields: Any) -> Any:
    bind_http_request(request, request_id="req_1", function="start")
    return SimpleNamespace(
        request=request,
        route=SimpleNamespace(template=template, function="start"),
        access=AccessFields(**fields),
        request_id="req_1",
        started=100.0,
    )


FULL = {
    "owner": "t_1",
    "key_prefix": "mgw_abcd1234",
    "model": "mistral-small-latest",
    "conversation_id": "conv_1",
    "tokens_in": 12,
    "tokens_out": 34,
    "upstream_latency_ms": 5,
    "rate_limit": "ok",
    "circuit": "closed",
    "idempotent_replay": False,
}


def _ok() -> None:
    headers = {
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        "User-Agent": "mistral-client-python/1.9 é",
        "X-Forwarded-For": "1.2.3.4, 10.0.0.1",
    }
    request = _request(headers=headers, data=b'{"inputs": "hi"}')
    emit_access(_ctx(request, **FULL), 200, response_bytes=512)


def _refused() -> None:
    headers = {"X-Cloud-Trace-Context": f"{TRACE}/12345;o=0", "Referer": "https://console/x"}
    request = _request(headers=headers)
    emit_access(_ctx(request, rate_limit="exceeded", error_type="rate_limited"), 429)


def _failed() -> None:
    ctx = _ctx(_request("/v1/conversations/c_1", "GET"), "/v1/conversations/{id}")
    ctx.access.error_type, ctx.access.exception = "internal_error", RuntimeError("boom")
    emit_access(ctx, 502, response_bytes=0)


def _unrouted() -> None:
    request = _request("/nowhere/ü", "DELETE", query_string="a=1&b=é")
    bind_http_request(request, request_id="req_2", function="start")
    emit_unrouted_access(request, function="start", status=404, started=100.0, request_id="req_2")


def _streamed() -> None:
    request = _request(headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-00"})
    ctx = _ctx(request, **FULL)
    body = deferred_stream(ctx, iter([b"data: one\n\n", b"data: [DONE]\n\n"]))
    clear_request()  # as FunctionApp does before the body is sent
    assert b"".join(body)


def _secrets() -> None:
    headers = {
        "User-Agent": f"agent Bearer eyJhbGciOi.payload.sig {MISTRAL_KEY}",
        "Referer": "https://user:hunter22@console.example/x",
        "Authorization": f"Bearer {GATEWAY_KEY}",
    }
    request = _request(query_string=f"password=hunter22&key={GATEWAY_KEY}", headers=headers)
    emit_access(_ctx(request, **{**FULL, "model": MISTRAL_KEY}), 401)


CASES: dict[str, Callable[[], None]] = {
    "2xx with a sampled traceparent": _ok,
    "4xx with the legacy trace header": _refused,
    "5xx with an exception, no trace": _failed,
    "404 unrouted, non-ASCII path and query": _unrouted,
    "streamed": _streamed,
    "secrets in the URL, headers and a field": _secrets,
}


def _written(capsys: pytest.CaptureFixture[str], case: Callable[[], None]) -> list[dict[str, Any]]:
    capsys.readouterr()
    case()
    clear_request()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_line_is_the_librarys(
    case: Callable[[], None], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line on stdout, the access line by its own path and by the library's, is the
    same JSON object with its keys in the same order (only sourceLocation's line differs:
    it is where in `_write_access` each path writes)."""
    writer = STATE.access_writer
    assert writer is not None
    calls: list[bool] = []
    monkeypatch.setattr(STATE, "access_writer", lambda *a: calls.append(writer(*a)) or calls[-1])
    ours = _written(capsys, case)
    assert calls == [True]  # the line did take its own path
    monkeypatch.setattr(STATE, "access_writer", None)
    theirs = _written(capsys, case)
    assert len(ours) == len(theirs) >= 1
    for mine, library in zip(ours, theirs, strict=True):
        if mine.get("event") == "access":
            for line in (mine, library):
                location = line[f"logging.googleapis.com/{SOURCE}"]
                assert location["function"] == "_write_access"
                assert location["file"] == _events.__file__
                assert isinstance(location.pop("line"), int)
        assert mine == library
        assert list(mine) == list(library)
        for name, value in mine.items():
            if isinstance(value, dict):
                assert list(value) == list(library[name]), name


def test_the_first_line_still_follows_the_diagnostic(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the library's handler does, the process's first line is preceded by its
    one-off diagnostic line, even when that first line is an access line. (The library
    writes it through whichever of its handlers writes first: here only stdout's is on
    the root logger, as in a function; a test run's session tee is set aside.)"""
    root = logging.getLogger()
    others = [h for h in root.handlers if h is not STATE.handler]
    for handler in others:
        root.removeHandler(handler)
    try:
        monkeypatch.setattr(google.cloud.logging_v2, "_instrumentation_emitted", False)
        first, access = _written(capsys, _ok)
        assert "logging.googleapis.com/diagnostic" in first
        assert access["event"] == "access"
        assert [line["event"] for line in _written(capsys, _ok)] == ["access"]
    finally:
        for handler in others:
            root.addHandler(handler)


def test_secrets_never_reach_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The access line's own path still redacts: keys, passwords, Bearer tokens, the
    registered Mistral key, wherever in the request they were."""
    (line,) = _written(capsys, _secrets)
    text = json.dumps(line)
    for secret in (GATEWAY_KEY, GATEWAY_KEY[4:], MISTRAL_KEY, "hunter22", "eyJhbGciOi"):
        assert secret not in text
    assert line["model"] == REDACTED
    assert f"password={REDACTED}" in line["httpRequest"]["requestUrl"]


def test_outside_a_request_the_library_writes_it(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a bound request (nothing to take the trace from) the writer declines and
    the library's path writes the line."""
    request = _request()
    capsys.readouterr()
    emit_unrouted_access(request, function="start", status=404, started=100.0, request_id="r")
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["event"] == "access"
    assert line["request_id"] == "r"
    assert line["function"] == "start"


def test_a_level_above_the_lines_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """With LOG_LEVEL=ERROR a 200's INFO access line is not written by either path."""
    logging.getLogger().setLevel(logging.ERROR)
    assert _written(capsys, _ok) == []


def test_a_handler_given_another_filter_is_sent_the_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A filter added to the gateway's handler still decides: one that drops access
    records leaves stdout without the line."""
    handler = STATE.handler
    assert handler is not None
    drop = logging.Filter("nothing.matches")
    handler.addFilter(drop)
    try:
        assert _written(capsys, _ok) == []
    finally:
        handler.removeFilter(drop)
    assert [line["event"] for line in _written(capsys, _ok)] == ["access"]


def test_other_handlers_get_the_record(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that is not the gateway's (pytest's here) still gets the access record,
    with its message and fields."""
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        _ok()
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert record.getMessage() == "POST /v1/conversations 200"
    assert record.json_fields["tokens_out"] == 34  # type: ignore[attr-defined]


class _Recorder:
    """A stream that keeps each write call's text."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_lines_from_150_threads_are_one_write_each() -> None:
    """150 threads writing access lines at once: every write is exactly one whole line."""
    handler = STATE.handler
    assert isinstance(handler, GatewayLogHandler)
    recorder = _Recorder()
    handler.setStream(recorder)  # type: ignore[arg-type]
    start = threading.Barrier(150)

    def run() -> None:
        start.wait()
        for _ in range(10):
            _ok()
        clear_request()

    threads = [threading.Thread(target=run) for _ in range(150)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    access = [w for w in recorder.writes if '"event": "access"' in w]
    assert len(access) == 1500
    for text in access:
        assert text.endswith("\n")
        assert text.count("\n") == 1
        assert json.loads(text)["tokens_out"] == 34


URLS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/conversations", {}),
    ("/v1/conversations", {"query_string": "a=1&b=%C3%A9"}),
    ("/v1/conversations", {"base_url": "https://gateway.example:8443/root"}),
    ("/v1/conversations", {"headers": {"Host": "xn--bcher-kva.example"}}),
    ("/v1/conversations", {"headers": {"Host": "Other.Example:80"}}),
    ("/v1/ü/%41%2F", {}),
    ("/v1/conversations/conv_1", {"query_string": "password=x"}),
]


def test_the_url_is_the_requests_own() -> None:
    """requestUrl is `request.url` for requests that differ in one URL part each, also
    when asked again for a new request with the same parts (the kept answer)."""
    for _ in range(2):
        for path, options in URLS:
            request = _request(path, **options)
            assert _events._url(request) == request.url


def test_kept_urls_are_bounded() -> None:
    """However many distinct URLs are logged, the kept answers stay bounded."""
    for n in range(_events._URLS_KEPT + 10):
        _events._url(_request(f"/v1/conversations/c_{n}"))
    assert 0 < len(_events._urls) <= _events._URLS_KEPT

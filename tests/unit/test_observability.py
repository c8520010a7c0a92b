"""Structured logs: trace correlation, request context, severities, levels, no secrets."""

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.config import Settings
from shared.observability import (
    REDACTED,
    Trace,
    bind_request,
    capture_logs,
    clear_request,
    configure_logging,
    log_body,
    log_event,
    parse_cloud_trace,
    parse_trace,
    parse_traceparent,
    reset_logging,
    severity_for_status,
    trace_resource,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
GATEWAY_KEY = "mgw_" + "Ab3-_xYz" * 5 + "Q9z"  # 43 characters after the prefix
MISTRAL_KEY = "mistral-upstream-key-0123456789"
DSN_PASSWORD = "s3cr3t-db-pass"

Configure = Callable[..., Settings]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """Configure logging with the given settings for one test, then undo it."""

    def apply(**values: Any) -> Settings:
        settings = Settings(**values)
        configure_logging(settings)
        return settings

    yield apply
    clear_request()
    reset_logging()


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests.observability")


# Trace headers


def test_traceparent_gives_trace_span_and_sampled_flag() -> None:
    """A W3C traceparent yields its trace id, parent span id and sampled bit."""
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == Trace(TRACE, SPAN, True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == Trace(TRACE, SPAN, False)


def test_cloud_trace_context_span_is_converted_to_hex() -> None:
    """X-Cloud-Trace-Context's decimal span becomes 16 hex digits; o=1 means sampled."""
    assert parse_cloud_trace(f"{TRACE}/1;o=1") == Trace(TRACE, "0000000000000001", True)
    assert parse_cloud_trace(f"{TRACE}/12345") == Trace(TRACE, f"{12345:016x}", False)
    assert parse_cloud_trace(TRACE) == Trace(TRACE, None, False)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has four parts
        f"00-{TRACE[:-1]}-{SPAN}-01",  # short trace id
    ],
)
def test_malformed_traceparent_is_ignored(header: str) -> None:
    """A traceparent that breaks the W3C format gives no trace."""
    assert parse_traceparent(header) is None


@pytest.mark.parametrize(
    "header", ["", "garbage", f"{TRACE[:-2]}/1;o=1", f"{TRACE}/abc", f"{'0' * 32}/1", "x" * 32]
)
def test_malformed_cloud_trace_context_is_ignored(header: str) -> None:
    """An X-Cloud-Trace-Context without a 32-hex trace id gives no trace."""
    assert parse_cloud_trace(header) is None


def test_traceparent_wins_and_a_bad_one_falls_back() -> None:
    """traceparent is preferred; when it is malformed the legacy header is used."""
    other = "1" * 32
    assert parse_trace(f"00-{TRACE}-{SPAN}-01", f"{other}/1") == Trace(TRACE, SPAN, True)
    assert parse_trace("garbage", f"{other}/1") == Trace(other, "0000000000000001", False)
    assert parse_trace(None, None) is None


def test_trace_field_is_the_full_resource_name_with_a_project() -> None:
    """With GCP_PROJECT set the trace reads projects/<p>/traces/<id>; locally the bare id."""
    assert trace_resource("my-proj", TRACE) == f"projects/my-proj/traces/{TRACE}"
    assert trace_resource("", TRACE) == TRACE


# Request context


def test_every_line_of_a_request_carries_its_id_and_trace(
    configure: Configure, logger: logging.Logger
) -> None:
    """After bind_request, plain and structured lines carry request id, function and trace."""
    configure(gcp_project="my-proj")
    bind_request(request_id="req_abc", trace=TRACE, span=SPAN, function="history", sampled=True)
    with capture_logs() as logs:
        logger.info("plain line")
        log_event("circuit_transition", state="open")
    assert len(logs) == 2
    for line in logs:
        assert line["request_id"] == "req_abc"
        assert line["function"] == "history"
        assert line["logging.googleapis.com/trace"] == f"projects/my-proj/traces/{TRACE}"
        assert line["logging.googleapis.com/spanId"] == SPAN
        assert line["logging.googleapis.com/trace_sampled"] is True


def test_clear_request_removes_the_request_id(configure: Configure, logger: logging.Logger) -> None:
    """A line logged after clear_request carries neither request id nor trace."""
    configure(gcp_project="my-proj")
    bind_request(request_id="req_abc", trace=TRACE, span=SPAN)
    clear_request()
    with capture_logs() as logs:
        logger.info("between requests")
    assert "request_id" not in logs[0]
    assert logs[0]["logging.googleapis.com/trace"] == ""


def test_bind_request_replaces_the_previous_context(
    configure: Configure, logger: logging.Logger
) -> None:
    """A new request on a reused thread starts clean: no trace left from the last one."""
    configure()
    bind_request(request_id="req_old", trace=TRACE, span=SPAN, function="start")
    bind_request(request_id="req_new")
    with capture_logs() as logs:
        logger.info("second request")
    assert logs[0]["request_id"] == "req_new"
    assert "function" not in logs[0]
    assert logs[0]["logging.googleapis.com/trace"] == ""


def test_lines_are_one_json_object_per_line_on_stdout(
    configure: Configure, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """What goes to stdout is exactly what capture_logs returns, one JSON line per event."""
    configure()
    capsys.readouterr()
    with capture_logs() as logs:
        logger.warning("first")
        log_event("batch_finished", batch_id="b_1", items_total=3, items_failed=1)
    written = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert written[-2:] == logs
    assert logs[1]["event"] == "batch_finished"
    assert logs[1]["items_failed"] == 1


def test_configure_logging_installs_one_handler(configure: Configure) -> None:
    """Configuring twice leaves exactly one handler of ours on the root logger."""
    configure()
    configure(log_level="DEBUG")
    names = [type(h).__name__ for h in logging.getLogger().handlers]
    assert names.count("GatewayLogHandler") == 1


def test_importing_the_module_does_not_load_google_cloud_logging() -> None:
    """Import is definitions only: the heavy client library loads at configure time."""
    code = "import sys, shared.observability;assert 'google.cloud.logging_v2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# Severities and levels


@pytest.mark.parametrize(
    ("status", "severity"),
    [(200, "INFO"), (302, "INFO"), (400, "WARNING"), (429, "WARNING"), (500, "ERROR")],
)
def test_access_severity_follows_the_status(status: int, severity: str) -> None:
    """INFO below 400, WARNING for 4xx, ERROR for 5xx."""
    assert severity_for_status(status) == severity


@pytest.mark.parametrize("severity", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
def test_event_severity_is_written_as_given(configure: Configure, severity: str) -> None:
    """log_event's severity name is the line's Cloud Logging severity."""
    configure(log_level="DEBUG")
    with capture_logs() as logs:
        log_event("probe", severity)
    # At DEBUG another thread's line may be captured too (asyncio names its selector).
    (probe,) = [line for line in logs if line.get("event") == "probe"]
    assert probe["severity"] == severity


def test_unknown_severity_is_refused(configure: Configure) -> None:
    """A misspelt severity is a programming error, caught at the call."""
    configure()
    with pytest.raises(ValueError, match="unknown severity"):
        log_event("probe", "LOUD")


def test_log_level_drops_lower_severities(configure: Configure) -> None:
    """With LOG_LEVEL=WARNING, INFO events are not written and WARNING ones are."""
    configure(log_level="WARNING")
    with capture_logs() as logs:
        log_event("quiet")
        log_event("loud", "WARNING")
    assert [line["event"] for line in logs] == ["loud"]


def test_none_fields_are_omitted(configure: Configure) -> None:
    """A field given as None does not appear on the line."""
    configure()
    with capture_logs() as logs:
        log_event("input_policy", pattern="ignore previous", action=None)
    assert logs[0]["pattern"] == "ignore previous"
    assert "action" not in logs[0]


# Secrets


def test_gateway_key_is_scrubbed_from_message_and_fields(
    configure: Configure, logger: logging.Logger
) -> None:
    """A gateway key never reaches the line, in the message or in a field."""
    configure()
    with capture_logs() as logs:
        logger.info("caller sent %s", GATEWAY_KEY, extra={"json_fields": {"given": GATEWAY_KEY}})
    line = json.dumps(logs[0])
    assert GATEWAY_KEY not in line
    assert GATEWAY_KEY[4:] not in line
    assert logs[0]["given"] == "mgw_" + REDACTED


def test_bearer_token_is_scrubbed(configure: Configure) -> None:
    """The value of an Authorization: Bearer header is replaced, the scheme kept."""
    configure()
    with capture_logs() as logs:
        log_event("upstream", header="Authorization: Bearer eyJhbGciOi.payload.sig")
    assert logs[0]["header"] == f"Authorization: Bearer {REDACTED}"


def test_registered_mistral_key_is_scrubbed(configure: Configure, logger: logging.Logger) -> None:
    """MISTRAL_API_KEY from the settings is replaced wherever it appears."""
    configure(mistral_api_key=MISTRAL_KEY)
    with capture_logs() as logs:
        logger.error("upstream refused key %s", MISTRAL_KEY)
        log_event("upstream", detail={"nested": f"x{MISTRAL_KEY}y"})
    text = json.dumps(logs)
    assert MISTRAL_KEY not in text
    assert logs[1]["detail"] == {"nested": f"x{REDACTED}y"}


def test_registered_passwords_are_scrubbed(configure: Configure, logger: logging.Logger) -> None:
    """REDIS_PASSWORD and DB_PASSWORD are replaced even outside any URL."""
    configure(redis_password="redis-auth-string-1", db_password="database-pass-2")
    with capture_logs() as logs:
        logger.warning("tried redis-auth-string-1 then database-pass-2")
    assert logs[0]["message"] == f"tried {REDACTED} then {REDACTED}"


def test_dsn_and_password_assignments_are_scrubbed(
    configure: Configure, logger: logging.Logger
) -> None:
    """Credentials in a postgresql:// URL and in password=... never reach the line."""
    configure()
    with capture_logs() as logs:
        logger.error("connect failed: postgresql://gateway:%s@10.0.0.3/gateway", DSN_PASSWORD)
        log_event("db", conninfo=f"host=db user=gateway password={DSN_PASSWORD}")
    text = json.dumps(logs)
    assert DSN_PASSWORD not in text
    assert f"postgresql://gateway:{REDACTED}@10.0.0.3/gateway" in logs[0]["message"]
    assert logs[1]["conninfo"] == f"host=db user=gateway password={REDACTED}"


def test_fields_named_like_secrets_are_scrubbed(configure: Configure) -> None:
    """A string field called api_key or password has its value replaced."""
    configure()
    with capture_logs() as logs:
        log_event("oops", api_key="abc123", password="hunter2", key_prefix="mgw_abcd1234")
    assert logs[0]["api_key"] == REDACTED
    assert logs[0]["password"] == REDACTED
    assert logs[0]["key_prefix"] == "mgw_abcd1234"


# Bodies


def test_bodies_are_not_logged_by_default(configure: Configure) -> None:
    """Without LOG_BODIES, log_body writes nothing."""
    configure()
    with capture_logs() as logs:
        log_body("request", b'{"inputs": "hello"}')
    assert logs == []


def test_log_body_redacts_and_truncates_when_enabled(configure: Configure) -> None:
    """With LOG_BODIES, the body is logged redacted and cut to a bounded size."""
    configure(log_bodies=True)
    body = json.dumps({"inputs": f"my key is {GATEWAY_KEY}", "pad": "x" * 10_000}).encode()
    with capture_logs() as logs:
        log_body("request", body)
    line = logs[0]
    assert line["event"] == "body"
    assert line["kind"] == "request"
    assert line["bytes"] == len(body)
    assert line["truncated"] is True
    assert len(line["body"]) < len(body)
    assert GATEWAY_KEY not in line["body"]
    assert f"my key is mgw_{REDACTED}" in line["body"]

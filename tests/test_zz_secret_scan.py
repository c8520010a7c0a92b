"""No gateway key and no Mistral key in clear: not in any log line of the run, not in the
database at any point of it.

This module is also a pytest plugin (`pytest_plugins = [__name__]` registers it when it
is collected, before any test runs), so that it sees the whole run, not only itself:

- every log record is also written to a session file by a handler of the same class as
  the one that writes stdout (same format, same redaction: exactly what is written);
- every log line a test wrote to stdout or stderr (pytest's capture) is kept;
- after every test that used the database, every column of every table is read, before
  the next test's fixture empties them;
- its own tests are moved to the end of the run, whatever the collection order.

Gateway keys are found by their shape (`mgw_` and 43 URL-safe characters), so no list of
issued keys is needed; the Mistral keys are those of the settings the tests used.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pg8000.native
import pytest

from shared.config import Settings
from shared.container import Container

pytest_plugins = [__name__]

KEY = re.compile(r"mgw_[A-Za-z0-9_-]{43}")


class _Run:
    """What the plugin gathered during the run."""

    def __init__(self) -> None:
        self.log_file: Path | None = None
        self.handler: Any = None
        self.captured: list[tuple[str, str]] = []  # (test id, JSON log line)
        self.mistral_keys: set[str] = set()
        self.db_url: str | None = None
        self.db: pg8000.native.Connection | None = None
        self.db_findings: list[str] = []
        self.db_scans = 0
        self.db_errors: list[str] = []


RUN = _Run()


def _is_mine(item: pytest.Item) -> bool:
    return item.nodeid.split("::")[0].endswith(Path(__file__).name)


# -- plugin hooks --------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The scans run after every other test."""
    mine = [item for item in items if _is_mine(item)]
    items[:] = [item for item in items if not _is_mine(item)] + mine


def pytest_collection_finish(session: pytest.Session) -> None:
    """Tee every log record to a session file, as the stdout handler writes it."""
    import logging

    from shared.observability._handler import GatewayLogHandler

    class SessionLogTee(GatewayLogHandler):
        """The stdout handler's format and redaction, written to a file (another class name,
        so tests counting the gateway's own handlers are not disturbed)."""

    if RUN.handler is not None:
        return
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (open for the whole run)
        "w", prefix="gateway-test-logs-", suffix=".jsonl", delete=False, encoding="utf-8"
    )
    RUN.log_file = Path(handle.name)
    RUN.handler = SessionLogTee(project_id=None, stream=handle)
    logging.getLogger().addHandler(RUN.handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    import logging

    if RUN.handler is not None:
        logging.getLogger().removeHandler(RUN.handler)
        RUN.handler.stream.close()
        RUN.handler = None
    if RUN.log_file is not None:
        RUN.log_file.unlink(missing_ok=True)
    if RUN.db is not None:
        RUN.db.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep every structured log line a test wrote to stdout or stderr."""
    # A report repeats the sections of the earlier phases: take this phase's own.
    own = (f"Captured stdout {report.when}", f"Captured stderr {report.when}")
    for name, text in report.sections:
        if name in own:
            RUN.captured += [(report.nodeid, line) for line in text.splitlines() if line[:1] == "{"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After each test body, while its rows are still there, read the whole database."""
    yield
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    for value in funcargs.values():
        settings = value if isinstance(value, Settings) else None
        if isinstance(value, Container):
            settings = value._settings  # never built from the environment here
        if settings is not None and len(settings.mistral_api_key) >= 8:
            RUN.mistral_keys.add(settings.mistral_api_key)
    session = funcargs.get("session_container")
    container = funcargs.get("container") or session
    if RUN.db_url is None and isinstance(container, Container) and container._settings:
        RUN.db_url = container._settings.database_url or None
    if "container" in funcargs and not _is_mine(item):
        _scan_database(item.nodeid)


# -- scanning ------------------------------------------------------------------------------------


def secrets_in(text: str, mistral_keys: Iterable[str]) -> list[str]:
    """Every gateway key and Mistral key that appears in `text`."""
    found = KEY.findall(text)
    found += [key for key in mistral_keys if key in text]
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _database_rows(db: pg8000.native.Connection) -> Iterable[tuple[str, str]]:
    """(table, text) for every value of every row of every table of the public schema."""
    tables = db.run(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    for (table,) in tables:
        for row in db.run(f'SELECT * FROM "{table}"'):
            yield table, " ".join(_text(v) for v in row if v is not None)


def _connect() -> pg8000.native.Connection | None:
    if RUN.db is None and RUN.db_url:
        from urllib.parse import urlsplit

        url = urlsplit(RUN.db_url)
        RUN.db = pg8000.native.Connection(
            url.username or "postgres",
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            database=url.path.lstrip("/") or None,
            password=url.password,
            timeout=5,
        )
    return RUN.db


def _scan_database(where: str) -> None:
    """Record any key found in the database; never fail the test being watched."""
    try:
        db = _connect()
        if db is None:
            return
        for table, text in _database_rows(db):
            for secret in secrets_in(text, RUN.mistral_keys):
                RUN.db_findings.append(f"after {where}: {table} holds {secret[:8]}...")
        RUN.db_scans += 1
    except Exception as exc:  # a test may have stopped the server: reconnect next time
        RUN.db_errors.append(f"{where}: {type(exc).__name__}")
        if RUN.db is not None:
            with contextlib.suppress(Exception):  # the connection is being dropped anyway
                RUN.db.close()
            RUN.db = None


# -- the scans -----------------------------------------------------------------------------------


def test_the_scanner_recognises_keys() -> None:
    """A gateway key and a Mistral key are found; a redacted key and a key prefix are not."""
    key = "mgw_" + "Ab3_-" * 8 + "xyz"
    assert secrets_in(f'{{"message": "bearer {key}"}}', ["sk-upstream-1"]) == [key]
    assert secrets_in("auth sk-upstream-1 failed", ["sk-upstream-1"]) == ["sk-upstream-1"]
    assert secrets_in('{"key_prefix": "mgw_Ab3_-Ab3", "x": "mgw_[REDACTED]"}', []) == []


def test_no_key_in_any_log_line_of_the_run(tmp_root: Path) -> None:
    """No log line of the run (ours, captured, or the servers') holds a gateway or Mistral key."""
    assert RUN.log_file is not None, "the log tee was not installed"
    RUN.handler.flush()
    teed = RUN.log_file.read_text(encoding="utf-8").splitlines()
    lines = [("root logger", line) for line in teed] + RUN.captured
    # The stand-in is Mistral's side: the upstream key is what it is sent, by design.
    for log in sorted(tmp_root.rglob("*.log")):
        if log.name != "standin.log":
            text = log.read_text(encoding="utf-8", errors="replace")
            lines += [(log.name, line) for line in text.splitlines()]
    if not lines:
        pytest.skip("nothing was logged in this run: run the whole suite to scan its logs")
    leaks = [
        f"{where}: {line[:300]}" for where, line in lines if secrets_in(line, RUN.mistral_keys)
    ]
    assert not leaks, "\n".join(leaks[:10])


def test_no_key_in_the_database_at_any_point(base_settings: Settings) -> None:
    """After every test that used the database, and now: no table holds a key in clear."""
    RUN.mistral_keys.add(base_settings.mistral_api_key)
    RUN.db_url = RUN.db_url or base_settings.database_url
    _scan_database("the end of the run")
    assert not RUN.db_errors or RUN.db_scans > 0, RUN.db_errors
    assert not RUN.db_findings, "\n".join(RUN.db_findings[:10])


def test_the_database_scan_sees_a_planted_key(base_settings: Settings) -> None:
    """Control: a key written into a text, a bytea and a jsonb column is found by the scan."""
    RUN.db_url = RUN.db_url or base_settings.database_url
    db = _connect()
    assert db is not None
    key = "mgw_" + "P" * 43

    def tables_with_secrets() -> list[str]:
        mistral = [base_settings.mistral_api_key]
        return sorted(table for table, text in _database_rows(db) if secrets_in(text, mistral))

    db.run("START TRANSACTION")
    try:
        before = tables_with_secrets()
        db.run(
            "INSERT INTO idempotency_records (owner_id, key, operation, request_hash, status,"
            " response_headers, response_body, expires_at) VALUES ('scan', :k, 'x', :h,"
            " 'completed', CAST(:j AS jsonb), :b, now())",
            k="plain",
            h=b"h",
            j=json.dumps({"echo": key}),
            b=key.encode(),
        )
        after = tables_with_secrets()
    finally:
        db.run("ROLLBACK")
    assert sorted([*before, "idempotency_records"]) == after

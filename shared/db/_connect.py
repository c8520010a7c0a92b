"""How the pool opens a connection: Cloud SQL connector, DATABASE_URL, or DB_HOST."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import pg8000.native
from pg8000.converters import TIMESTAMPTZ
from pg8000.converters import timestamptz_in as _pg8000_timestamptz_in
from pg8000.core import FLUSH_MSG, CoreConnection

from shared.config import Settings

__all__ = ["connector_for", "timestamptz_in"]

_APPLICATION_NAME = "mistral-agents-gateway"


def connector_for(
    settings: Settings, cloud_sql_connector: Callable[..., Any] | None = None
) -> Callable[[], CoreConnection]:
    """A function that opens one new, configured connection per call.

    `cloud_sql_connector` builds the Cloud SQL `Connector` (tests pass a fake;
    Google's API cannot be reached from them).
    """
    if settings.database_url:
        opener = _url_opener(settings)
    elif settings.cloud_sql_instance:
        opener = _cloud_sql_opener(settings, cloud_sql_connector)
    else:
        opener = _host_opener(settings)
    statement_timeout = int(settings.db_statement_timeout_ms)
    # The socket timeout of an open connection, and the bound on opening one once the
    # process has connected before: the pool timeout, at least 1 s.
    steady_s = max(settings.db_pool_timeout_ms / 1000, 1.0)
    # Until the first connection succeeds (a cold instance, whose Direct VPC egress may
    # take a while to connect), opening one may take DB_CONNECT_TIMEOUT_MS.
    first_s = max(settings.db_connect_timeout_ms / 1000, 0.001)
    connected = threading.Event()

    def connect() -> CoreConnection:
        conn = opener(steady_s if connected.is_set() else first_s)
        connected.set()
        # A runaway query must not hold a pool slot for ever. Statements are prepared once per
        # connection (`_pool.Conn`); each execution is still planned for its own values, as
        # an unprepared statement is, so a tenant's skewed data never gets a generic plan.
        conn.execute_simple(
            f"SET statement_timeout = {statement_timeout}; SET plan_cache_mode = force_custom_plan"
        )
        conn.register_in_adapter(TIMESTAMPTZ, timestamptz_in)
        raw_socket = getattr(conn, "_usock", None)
        if raw_socket is not None:
            raw_socket.settimeout(steady_s)
        conn._sock = _WithoutFlushMessages(conn._sock)
        return conn

    return connect


class _WithoutFlushMessages:
    """pg8000's buffered socket file, less the Flush messages written to it.

    pg8000 (1.31, `pg8000.core`) writes a Flush ('H') after each Parse, Describe, Bind,
    Execute and Close, and always writes a Sync before it waits for an answer. Each Flush
    makes the server send what it has so far: a prepared statement's BindComplete went
    out in one packet and its rows in another, so this process was woken and read twice
    per statement. Without them the server answers once, at the Sync, with the same
    messages (bench/RESULTS.md, note 27). Reads, flushes and closing are the file's own.
    """

    __slots__ = ("close", "file", "flush", "read")

    def __init__(self, file: Any) -> None:
        self.file = file
        self.read = file.read
        self.flush = file.flush
        self.close = file.close

    def write(self, data: bytes) -> int:
        if data == FLUSH_MSG:
            return len(data)
        written: int = self.file.write(data)
        return written


def _url_opener(settings: Settings) -> Callable[[float], CoreConnection]:
    parts = urlsplit(settings.database_url)
    kwargs: dict[str, Any] = {
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "database": (parts.path or "/").lstrip("/") or None,
        "application_name": _APPLICATION_NAME,
    }
    return lambda timeout: pg8000.native.Connection(**kwargs, timeout=timeout)


def _host_opener(settings: Settings) -> Callable[[float], CoreConnection]:
    kwargs: dict[str, Any] = {
        "user": settings.db_user,
        "password": settings.db_password or None,
        "host": settings.db_host or "127.0.0.1",
        "port": settings.db_port,
        "database": settings.db_name,
        "application_name": _APPLICATION_NAME,
    }
    return lambda timeout: pg8000.native.Connection(**kwargs, timeout=timeout)


def _cloud_sql_opener(
    settings: Settings, make_connector: Callable[..., Any] | None
) -> Callable[[float], CoreConnection]:
    """Cloud SQL through the Python connector: IAM auth, private IP, lazy refresh.

    LAZY refresh fetches certificates on demand, which suits Cloud Run where the
    CPU is throttled between requests (background refresh would stall):
    https://cloud.google.com/sql/docs/postgres/connect-run#connect-connectors
    """
    lock = threading.Lock()
    connector: Any = None

    def connect(timeout: float) -> CoreConnection:
        nonlocal connector
        from google.cloud.sql.connector import Connector, IPTypes

        with lock:
            if connector is None:
                ip_type = IPTypes.PRIVATE if settings.db_private_ip else IPTypes.PUBLIC
                connector = (make_connector or Connector)(ip_type=ip_type, refresh_strategy="LAZY")
        conn: CoreConnection = connector.connect(
            settings.cloud_sql_instance,
            "pg8000",
            user=settings.db_user,
            password=None if settings.db_iam_auth else settings.db_password,
            db=settings.db_name,
            enable_iam_auth=settings.db_iam_auth,
            # The connector also fetches the instance's certificate: a second more.
            timeout=round(timeout) + 1,
        )
        return conn

    return connect


def timestamptz_in(text: str) -> Any:
    """A `timestamptz` column's text as pg8000 reads it, at a fraction of the cost.

    pg8000 parses every timestamp with `datetime.strptime` (17% of the history function's
    CPU on a page of 100 entries, py-spy; bench/RESULTS.md). PostgreSQL's ISO output
    (`2026-12-06 18:14:51.409+00`, `... +05:30`) is what `datetime.fromisoformat` reads;
    anything it refuses (infinity, years past 9999, BC dates) goes to pg8000's own
    reader, so every value comes out as before (tests/unit/test_timestamptz_in.py).
    """
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _pg8000_timestamptz_in(text)

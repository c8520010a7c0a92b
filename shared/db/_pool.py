"""A small bounded pool of pg8000 connections.

At most `size` connections exist at once; a caller that cannot get one within
`timeout_s` gets `ServiceUnavailable` (503 + Retry-After) instead of waiting
forever. Connections idle for a while are checked before reuse and replaced
after `max_age_s`, so a database restart or a Cloud SQL failover costs one
failed check, not a failed request. A connection that raised a network error
is closed, never returned to the pool.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pg8000.exceptions
from pg8000.converters import make_params
from pg8000.core import CoreConnection
from pg8000.native import to_statement

from shared.errors import ServiceUnavailable, UniqueViolation

__all__ = ["DATABASE_ERRORS", "Conn", "Pool", "db_unavailable"]

# The driver's errors, for a caller that must tell a database failure from a bug.
DATABASE_ERRORS: tuple[type[Exception], ...] = (pg8000.exceptions.Error,)
_UNIQUE_VIOLATION = "23505"


def _sql_state(exc: pg8000.exceptions.DatabaseError) -> str | None:
    detail = exc.args[0] if exc.args else None
    return str(detail.get("C")) if isinstance(detail, dict) else None


# A connection idle longer than this is pinged before it is handed out.
_PING_AFTER_IDLE_S = 10.0

# pg8000 rewrites `:name` parameters by scanning the SQL character by character in
# Python, on every call: a large share of a start request's CPU (bench/RESULTS.md, note 1).
# The result depends on the SQL text alone, and the gateway's statements are a fixed
# set of strings, so each is parsed once per process.
_to_statement = functools.lru_cache(maxsize=1024)(to_statement)

# Statements each connection keeps prepared. pg8000's `execute_unnamed` parses, describes,
# binds and executes in three round trips to the server on every call; a statement prepared
# once per connection (pg8000's `prepare_statement`, what its `native.PreparedStatement`
# does) then runs in one: Bind, Execute, Sync. The gateway's statements are a fixed set
# (`_to_statement` above); past this many on one connection the rest run unprepared.
_PREPARED_PER_CONNECTION = 256
# "cached plan must not change result type": a table a prepared statement reads changed
# shape (a migration ran while this instance lived). Its statements are stale: the
# connection is dropped, the next one prepares afresh.
_FEATURE_NOT_SUPPORTED = "0A000"


def db_unavailable(exc: BaseException) -> bool:
    """True for errors meaning the database cannot be reached (not SQL errors)."""
    return isinstance(exc, (pg8000.exceptions.InterfaceError, OSError, TimeoutError))


class _FairSlots:
    """A counting semaphore that hands a freed slot to the longest waiter (FIFO).

    `threading.Semaphore` wakes one waiter on release, but a thread arriving meanwhile
    can take the slot first; the woken one then waits again at the back of the queue.
    With hundreds of request threads and a few connections that barging starved some
    callers for a long time (the 300-client benchmark's tail: bench/RESULTS.md, note 7)
    while the median wait was zero. Here a release gives its slot to the first waiter
    directly.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._lock = threading.Lock()
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True  # a release handed this waiter its slot
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True  # handed its slot just as the wait timed out: it is this caller's
        return False

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


# (statement name or None for unprepared, columns, input converters, pg8000's SQL, values maker)
_Prepared = tuple[bytes | None, Any, Any, str, Callable[[dict[str, Any]], Any]]


class Conn:
    """One checked-out connection, with named parameters (`:name`) in SQL, each statement
    prepared on first use."""

    def __init__(self, raw: CoreConnection) -> None:
        self.raw = raw
        self.created = time.monotonic()
        self.last_used = self.created
        self.columns: list[str] = []
        self._prepared: dict[str, _Prepared] = {}
        # Set when the socket failed: the connection is closed, never reused.
        self.broken = False

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Run one statement; return its rows."""
        raw = self.raw
        try:
            if params:
                prepared = self._prepared.get(sql)
                if prepared is None:
                    prepared = self._prepare(sql)
                name, columns, input_funcs, statement, make_vals = prepared
                if name is None:  # past the connection's bound: as before, unprepared
                    context = raw.execute_unnamed(statement, make_vals(params))
                else:
                    values = make_params(raw.py_types, make_vals(params))
                    context = raw.execute_named(name, values, columns, input_funcs, statement)
            else:
                context = raw.execute_simple(sql)
        except pg8000.exceptions.DatabaseError as exc:
            # The server answered: the protocol is in step, the connection reusable. What
            # the domain acts on gets its name here (`shared.errors`), not a SQLSTATE.
            state = _sql_state(exc)
            if state == _UNIQUE_VIOLATION:
                raise UniqueViolation() from exc
            if state == _FEATURE_NOT_SUPPORTED:
                self.broken = True
            raise
        except Exception:
            # Failed mid-message (a value pg8000 cannot encode, a dropped socket): whatever
            # the server reads next is not ours. Never hand this connection out again.
            self.broken = True
            raise
        self.columns = [c["name"] for c in (context.columns or [])]
        return context.rows or []

    def _prepare(self, sql: str) -> _Prepared:
        statement, make_vals = _to_statement(sql)
        if len(self._prepared) >= _PREPARED_PER_CONNECTION:
            return (None, None, None, statement, make_vals)
        name, columns, input_funcs = self.raw.prepare_statement(statement, ())
        prepared: _Prepared = (name, columns, input_funcs, statement, make_vals)
        self._prepared[sql] = prepared
        return prepared

    def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        rows = self.run(sql, **params)
        return dict(zip(self.columns, rows[0], strict=True)) if rows else None

    def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Every row as a dict."""
        rows = self.run(sql, **params)
        return [dict(zip(self.columns, row, strict=True)) for row in rows]

    def close(self) -> None:
        # Closing a broken socket may fail; the connection is gone either way.
        with contextlib.suppress(Exception):
            self.raw.close()


class Pool:
    """Bounded pool; `connection()` and `transaction()` always give connections back."""

    def __init__(
        self,
        connect: Callable[[], CoreConnection],
        *,
        size: int,
        timeout_s: float,
        max_age_s: float = 1800.0,
    ) -> None:
        self._connect = connect
        self.size = size
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._slots = _FairSlots(size)
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A connection in autocommit mode, for single statements and reads."""
        if not self._slots.acquire(timeout=self._timeout_s):
            raise ServiceUnavailable("the database is busy; try again shortly")
        conn: Conn | None = None
        try:
            conn = self._checkout()
            yield conn
        except BaseException as exc:
            if db_unavailable(exc):
                if conn is not None:
                    conn.broken = True
                raise ServiceUnavailable("the database is unreachable") from exc
            raise
        finally:
            if conn is not None:
                self._checkin(conn)
            self._slots.release()

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A connection inside one transaction: committed on success, rolled back otherwise."""
        with self.connection() as conn:
            conn.run("START TRANSACTION")
            try:
                yield conn
            except BaseException:
                if conn.broken:
                    raise  # failed mid-message: it is discarded, not spoken to again
                try:
                    conn.run("ROLLBACK")
                except Exception as exc:
                    # The server side is gone: make sure this connection is not reused.
                    conn.broken = True
                    raise ServiceUnavailable("the database is unreachable") from exc
                raise
            conn.run("COMMIT")

    def _checkout(self) -> Conn:
        now = time.monotonic()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new()
            if now - conn.created > self._max_age_s:
                conn.close()
                continue
            if now - conn.last_used > _PING_AFTER_IDLE_S:
                try:
                    conn.run("SELECT 1")
                except Exception:
                    conn.close()
                    continue
            return conn

    def _new(self) -> Conn:
        try:
            return Conn(self._connect())
        except Exception as exc:
            raise ServiceUnavailable("the database is unreachable") from exc

    def _checkin(self, conn: Conn) -> None:
        conn.last_used = time.monotonic()
        with self._lock:
            if not self._closed and not conn.broken:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def text_array(values: list[str] | tuple[str, ...]) -> str:
    """A PostgreSQL text[] literal of `values`, for `CAST(:param AS text[])`.

    pg8000 leaves an element spelled `null` (any case but `NULL`) unquoted, so PostgreSQL
    reads it as NULL: an allow-list entry "null" came back as JSON null. Here every element
    is quoted, so each is the text it was.
    """
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"

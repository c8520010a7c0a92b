"""The pool and the migrations, against the real embedded PostgreSQL."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pg8000.exceptions
import pytest

from devstack.servers import EmbeddedPostgres
from shared.config import Settings
from shared.container import Container
from shared.db import Pool, connector_for
from shared.db.schema import MIGRATIONS_DIR, MigrationError, migrate
from shared.errors import ServiceUnavailable


def _pool_of(container: Container) -> Pool:
    return _pool(container.settings.database_url, size=1)


def _pool(url: str, size: int = 2, timeout_s: float = 0.3) -> Pool:
    return Pool(connector_for(Settings(database_url=url)), size=size, timeout_s=timeout_s)


def test_pool_never_opens_more_than_its_size(container: Container) -> None:
    """With a pool of 2, a third concurrent caller waits, then gets 503 on timeout."""
    pool = _pool(container.settings.database_url, size=2, timeout_s=0.2)
    holding = threading.Barrier(3)
    release = threading.Event()

    def hold() -> None:
        with pool.connection() as conn:
            conn.run("SELECT 1")
            holding.wait()
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    holding.wait()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable), pool.connection():
        pass
    assert time.monotonic() - started < 1.0
    release.set()
    for t in threads:
        t.join()
    with pool.connection() as conn:
        assert conn.run("SELECT 41 + 1") == [[42]]
    pool.close()


def test_transaction_rolls_back_on_error(container: Container) -> None:
    """An exception inside a transaction leaves no row behind, and the connection is reusable."""
    pool = container.pool
    with pytest.raises(RuntimeError), pool.transaction() as conn:
        conn.run("INSERT INTO batches (id, owner_id, status) VALUES ('b1', 'o1', 'pending')")
        raise RuntimeError("boom")
    with pool.connection() as conn:
        assert conn.run("SELECT count(*) FROM batches") == [[0]]


def test_named_parameters_are_sent_as_parameters(container: Container) -> None:
    """A hostile string is stored verbatim, never interpreted as SQL."""
    hostile = "x'); DROP TABLE batches; --"
    with container.pool.transaction() as conn:
        conn.run(
            "INSERT INTO batches (id, owner_id, status) VALUES (:id, :owner, 'pending')",
            id=hostile,
            owner="o1",
        )
    with container.pool.connection() as conn:
        row = conn.one("SELECT id FROM batches WHERE owner_id = :o", o="o1")
    assert row == {"id": hostile}


def test_a_statement_is_prepared_once_per_connection_and_planned_per_call(
    container: Container,
) -> None:
    """A parameterised statement is prepared on its first run and reused after; plans stay
    custom (planned for each call's values), as an unprepared statement's are."""
    pool = _pool(container.settings.database_url, size=1)
    count = "SELECT count(*) FROM pg_prepared_statements"
    with pool.connection() as conn:
        before = conn.run(count)[0][0]
        for n in (1, 2, 3):
            assert conn.run("SELECT :n::int + 1", n=n) == [[n + 1]]
        assert conn.run(count)[0][0] == before + 1
        assert conn.run("SHOW plan_cache_mode") == [["force_custom_plan"]]
    pool.close()


def test_past_its_bound_a_connection_runs_statements_unprepared(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the per-connection bound a statement runs as before (unprepared), with the
    same values: nothing more is prepared."""
    from shared.db import _pool

    monkeypatch.setattr(_pool, "_PREPARED_PER_CONNECTION", 1)
    pool = _pool_of(container)
    moment = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    count = "SELECT count(*) FROM pg_prepared_statements"
    with pool.connection() as conn:
        before = conn.run(count)[0][0]
        assert conn.run("SELECT :n::int * 2", n=21) == [[42]]
        assert conn.run("SELECT CAST(:t AS timestamptz), :s", t=moment, s="x") == [[moment, "x"]]
        assert conn.run(count)[0][0] == before + 1
    pool.close()


class _Recorder:
    """A file that keeps what is written to it before passing it on."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.written = bytearray()

    def write(self, data: bytes) -> int:
        self.written += data
        return int(self.file.write(data))


def _message_types(stream: bytes) -> list[bytes]:
    """The frontend messages in `stream` (a type byte and a length each), by type."""
    types = []
    while stream:
        types.append(stream[:1])
        stream = stream[1 + struct.unpack("!i", stream[1:5])[0] :]
    return types


def test_statements_go_without_flush_messages_and_still_answer(container: Container) -> None:
    """pg8000's Flush messages are left out (the server answers once, at the Sync): a
    prepared statement, an unprepared one and a failing one still get their answers, and
    the connection stays usable after the error."""
    conn = connector_for(Settings(database_url=container.settings.database_url))()
    try:
        recorder = _Recorder(conn._sock.file)
        conn._sock.file = recorder
        name, columns, funcs = conn.prepare_statement("SELECT $1::int + 1", ())
        context = conn.execute_named(name, ["41"], columns, funcs, "SELECT $1::int + 1")
        assert context.rows == [[42]]
        with pytest.raises(pg8000.exceptions.DatabaseError):
            conn.execute_unnamed("SELECT 1 / 0")
        assert conn.execute_unnamed("SELECT 'still here'").rows == [["still here"]]
        conn.close_prepared_statement(name)
        types = _message_types(bytes(recorder.written))
        assert b"H" not in types
        # Parse, Describe, Sync; Bind, Execute, Sync; then the rest, each ending in a Sync.
        assert types[:6] == [b"P", b"D", b"S", b"B", b"E", b"S"]
    finally:
        conn.close()


def test_a_prepared_statement_made_stale_by_a_migration_costs_its_connection_once(
    container: Container,
) -> None:
    """When a table a prepared statement reads changes shape, that call fails and its
    connection is dropped; the next call prepares afresh on a new connection."""
    pool = _pool(container.settings.database_url, size=1)
    with pool.connection() as conn:
        conn.run("CREATE TABLE prepared_shape (id text, a int)")
        conn.run("INSERT INTO prepared_shape VALUES ('x', 1)")
    read = "SELECT * FROM prepared_shape WHERE id = :id"
    try:
        with pool.connection() as conn:
            assert conn.run(read, id="x") == [["x", 1]]
        with pool.connection() as conn:
            conn.run("ALTER TABLE prepared_shape ADD COLUMN b int DEFAULT 2")
        with pytest.raises(pg8000.exceptions.DatabaseError), pool.connection() as conn:
            conn.run(read, id="x")
        with pool.connection() as conn:
            assert conn.run(read, id="x") == [["x", 1, 2]]
    finally:
        with pool.connection() as conn:
            conn.run("DROP TABLE prepared_shape")
        pool.close()


def test_pool_recovers_after_a_database_restart(tmp_root: Path) -> None:
    """After PostgreSQL restarts, the next checkout replaces the dead connection."""
    server = EmbeddedPostgres(tmp_root / "pg-restart", durable=False).start()
    try:
        pool = _pool(server.url, size=1, timeout_s=2)
        with pool.connection() as conn:
            conn.run("SELECT 1")
        server.stop()
        with pytest.raises(ServiceUnavailable), pool.connection() as conn:
            conn.run("SELECT 1")
        server.start()
        with pool.connection() as conn:
            assert conn.run("SELECT 1") == [[1]]
        pool.close()
    finally:
        server.stop()


def test_failed_migration_leaves_the_schema_as_it_was(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """A migration that fails halfway creates nothing and is not recorded."""
    url = postgres.create_database("migrate_fail")
    bad = tmp_path / "migrations"
    bad.mkdir()
    (bad / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (bad / "0002_bad.sql").write_text("CREATE TABLE b (x int); SELECT no_such_function();")
    pool = _pool(url)
    with pytest.raises(MigrationError, match="0002_bad"):
        migrate(pool, bad)
    with pool.connection() as conn:
        tables = {
            r[0] for r in conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        versions = [r[0] for r in conn.run("SELECT version FROM schema_migrations")]
    assert "a" in tables
    assert "b" not in tables
    assert versions == ["0001_ok"]
    pool.close()


def test_changed_migration_is_refused(postgres: EmbeddedPostgres, tmp_path: Path) -> None:
    """Editing a migration after it was applied is detected, not silently skipped."""
    url = postgres.create_database("migrate_changed")
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_a.sql").write_text("CREATE TABLE a (x int);")
    pool = _pool(url)
    migrate(pool, directory)
    (directory / "0001_a.sql").write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match="changed"):
        migrate(pool, directory)
    pool.close()


def test_two_concurrent_runners_apply_the_schema_exactly_once(
    postgres: EmbeddedPostgres,
) -> None:
    """Two migration processes started at once: every migration applied once, both succeed."""
    url = postgres.create_database("migrate_race")
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "shared.db.migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    expected = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
    # One runner applied everything; the other waited on the lock and found nothing to do.
    assert sorted("none pending" in out for out, _ in outputs) == [False, True], outputs
    pool = _pool(url)
    with pool.connection() as conn:
        versions = [r[0] for r in conn.run("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == expected
    pool.close()

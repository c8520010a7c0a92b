"""Versioned schema migrations, applied by one command (`shared.db.migrate`), safe to
run concurrently.

Each file in `migrations/` (`NNNN_name.sql`) is applied once, in order, inside
its own transaction together with its row in `schema_migrations`, so a
migration that fails leaves the schema as it was. A session-level advisory
lock serialises runners: two started at once apply each migration exactly once,
the second waiting for the first and then finding nothing left to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shared.db._pool import Conn, Pool

__all__ = ["MIGRATIONS_DIR", "Migration", "MigrationError", "applied", "migrate", "pending"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# An arbitrary constant shared by every runner: the advisory lock's key.
_LOCK_KEY = 0x6D67_7731


class MigrationError(Exception):
    """A migration failed or an applied one was changed after the fact."""


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _discover(directory: Path) -> list[Migration]:
    found = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [Migration(p.stem, p) for p in found]


def applied(conn: Conn) -> dict[str, str]:
    """Versions already applied, with their checksums."""
    conn.run(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return {v: c for v, c in conn.run("SELECT version, checksum FROM schema_migrations")}


def pending(conn: Conn, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    done = applied(conn)
    todo = []
    for migration in _discover(directory):
        if migration.version not in done:
            todo.append(migration)
        elif done[migration.version] != migration.checksum:
            raise MigrationError(f"migration {migration.version} changed after it was applied")
    return todo


def migrate(pool: Pool, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; return the versions this call applied."""
    done: list[str] = []
    with pool.connection() as conn:
        conn.run("SELECT pg_advisory_lock(:key)", key=_LOCK_KEY)
        try:
            for migration in pending(conn, directory):
                _apply(conn, migration)
                done.append(migration.version)
        finally:
            conn.run("SELECT pg_advisory_unlock(:key)", key=_LOCK_KEY)
    return done


def _apply(conn: Conn, migration: Migration) -> None:
    conn.run("START TRANSACTION")
    try:
        conn.run(migration.sql)
        conn.run(
            "INSERT INTO schema_migrations (version, checksum) VALUES (:v, :c)",
            v=migration.version,
            c=migration.checksum,
        )
    except Exception as exc:
        conn.run("ROLLBACK")
        raise MigrationError(f"migration {migration.version} failed: {exc}") from exc
    conn.run("COMMIT")

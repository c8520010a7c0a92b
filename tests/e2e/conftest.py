"""The whole local stack, as `make run` starts it, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack, StackInfo
from shared.config import Settings
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key


@pytest.fixture(scope="session")
def stack(tmp_root: Path) -> Iterator[StackInfo]:
    local = LocalStack(
        state_dir=tmp_root / "stack",
        port=0,
        durable=False,
        threads=8,
        env={"RATE_LIMIT_REQUESTS": "100000", "BREAKER_FAILURE_THRESHOLD": "1000"},
    )
    try:
        yield local.start()
    finally:
        local.stop()


@pytest.fixture(scope="session")
def stack_container(stack: StackInfo) -> Iterator[Container]:
    container = Container(Settings(database_url=stack.database_url, redis_url=stack.redis_url))
    yield container
    container.close()


@pytest.fixture(scope="session")
def user_key(stack_container: Container) -> NewKey:
    with stack_container.pool.transaction() as conn:
        return create_key(conn, owner_id="e2e-tenant", name="e2e user", role="user")

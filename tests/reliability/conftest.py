"""The reliability tier: a whole local stack of its own, broken and mended by each test.

The e2e tests share their stack and must not see it fail; these tests stop its
PostgreSQL and Valkey, SIGKILL its functions and queue Mistral faults, so they
start their own (`FaultStack`). After each test everything is mended: servers
running, functions alive and healthy, no fault queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.figures import figures as session_figures
from reliability.harness import FaultStack, Tenant


@pytest.fixture(scope="session")
def fstack(tmp_root: Path) -> Iterator[FaultStack]:
    stack = FaultStack(tmp_root / "reliability").start()
    try:
        yield stack
    finally:
        stack.stop()
        session_figures.dump()


@pytest.fixture(autouse=True)
def mended(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the stack, put every part back up."""
    yield
    if "fstack" in request.fixturenames:
        request.getfixturevalue("fstack").mend()


@pytest.fixture
def tenant(fstack: FaultStack, request: pytest.FixtureRequest) -> Tenant:
    """A user key of a tenant of its own, named after the test."""
    return fstack.tenant(f"rel-{request.node.name}"[:120])

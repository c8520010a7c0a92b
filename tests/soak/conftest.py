"""The long soak: collected only when GATEWAY_SOAK=1 (`make reliability` sets it).

`make test` collects everything under tests/, so without the variable this
directory's tests are ignored: the soak runs for minutes, the gate must not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.figures import figures
from reliability.harness import FaultStack

collect_ignore_glob = [] if os.environ.get("GATEWAY_SOAK") == "1" else ["test_*.py"]


@pytest.fixture(scope="session")
def soak_stack(tmp_root: Path) -> Iterator[FaultStack]:
    stack = FaultStack(tmp_root / "soak", threads=8).start()
    try:
        yield stack
    finally:
        stack.stop()
        figures.dump()

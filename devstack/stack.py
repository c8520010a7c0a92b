"""The whole gateway on one machine: `make run`, and the end-to-end tests' stack.

`LocalStack` starts, in order: an embedded PostgreSQL (unless DATABASE_URL is
set) and Valkey (unless REDIS_URL is set), the Mistral stand-in (unless
MISTRAL_API_KEY is set, then the real Mistral is used), applies the
migrations, makes or reuses a bootstrap admin key, starts each function as its
own functions-framework process (as Cloud Run does), and puts the local router
in front of them. Every child process is stopped on exit, and is sent SIGTERM
by the kernel if this process dies first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.router import RedactingRequestHandler, Router
from devstack.servers import (
    EmbeddedPostgres,
    EmbeddedValkey,
    die_with_parent,
    free_port,
    stop_process,
)
from shared.config import Settings
from shared.http import routes

__all__ = ["LocalStack", "StackInfo", "function_command", "spawn", "wait_port"]

ROOT = Path(__file__).resolve().parent.parent
STANDIN_KEY = "standin-upstream-key"
BOOTSTRAP_OWNER = "default"
# The operator key's own tenant: operators administer every tenant from it.
OPERATOR_OWNER = "operators"


@dataclass
class StackInfo:
    """What `.local/stack.json` holds: how to reach the running stack."""

    url: str
    admin_key: str
    operator_key: str
    health: list[str]
    mistral_url: str
    openapi: str
    functions: dict[str, str]
    database_url: str
    redis_url: str
    # The web console, signed in with `admin_key`.
    console: str = ""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


@dataclass
class LocalStack:
    state_dir: Path = ROOT / ".local"
    port: int = 8080
    # Extra environment for the functions (tests set limits, timeouts, faults).
    env: dict[str, str] = field(default_factory=dict)
    durable: bool = True
    threads: int = Settings.threads  # THREADS of every function, Settings' default
    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    info: StackInfo | None = None
    _server: Any = None

    def start(self) -> StackInfo:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        environ = {**os.environ, **self.env}
        database_url = environ.get("DATABASE_URL") or self._start_postgres()
        redis_url = environ.get("REDIS_URL") or self._start_valkey()
        if environ.get("MISTRAL_API_KEY"):
            mistral_url = environ.get("MISTRAL_SERVER_URL", "https://api.mistral.ai")
            mistral_key = environ["MISTRAL_API_KEY"]
        else:
            mistral_url, mistral_key = self._start_standin(), STANDIN_KEY
        function_env = {
            **environ,
            "ENVIRONMENT": environ.get("ENVIRONMENT", "local"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "MISTRAL_SERVER_URL": mistral_url,
            "MISTRAL_API_KEY": mistral_key,
            "THREADS": str(self.threads),
            "PYTHONPATH": str(ROOT),
        }
        self._migrate(function_env)
        admin_key = self._bootstrap_key(function_env, "admin_key", "admin", BOOTSTRAP_OWNER)
        operator_key = self._bootstrap_key(function_env, "operator_key", "operator", OPERATOR_OWNER)
        functions = {f: self._start_function(f, function_env) for f in routes.FUNCTIONS}
        for function, url in functions.items():
            _wait_healthy(url + routes.health_path(function), self.processes[function])
        url = self._start_router(functions)
        health = [
            (url if r.public else functions[r.function]) + r.template
            for r in routes.ROUTES
            if r.operation == "gateway.health"
        ]
        self.info = StackInfo(
            url=url,
            admin_key=admin_key,
            operator_key=operator_key,
            health=health,
            mistral_url=mistral_url,
            openapi=url + routes.GATEWAY_PREFIX + "/openapi.json",
            console=url + routes.GATEWAY_PREFIX + "/console",
            functions=functions,
            database_url=database_url,
            redis_url=redis_url,
        )
        (self.state_dir / "stack.json").write_text(self.info.to_json())
        return self.info

    def _start_postgres(self) -> str:
        self.postgres = EmbeddedPostgres(self.state_dir / "pgdata", durable=self.durable).start()
        return self.postgres.create_database("gateway")

    def _start_valkey(self) -> str:
        self.valkey = EmbeddedValkey().start()
        return self.valkey.url

    def _start_standin(self) -> str:
        port = free_port()
        command = [sys.executable, "-m", "devstack.standin", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        if self.durable:
            # Mistral keeps what it was given: so does the stand-in, beside the database.
            command += ["--state-file", str(self.state_dir / "standin-state.json")]
        self.processes["standin"] = spawn(
            command,
            {**os.environ, "PYTHONPATH": str(ROOT)},
            self.state_dir / "standin.log",
        )
        wait_port(port, self.processes["standin"])
        return f"http://127.0.0.1:{port}"

    def _migrate(self, env: dict[str, str]) -> None:
        subprocess.run(
            [sys.executable, "-m", "shared.db.migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )

    def _bootstrap_key(self, env: dict[str, str], field: str, role: str, owner: str) -> str:
        """Reuse the `field` key of the last run if it still works; else make one."""
        previous = self.state_dir / "stack.json"
        if previous.exists():
            key = json.loads(previous.read_text()).get(field, "")
            if key and _key_valid(key, env):
                return key
        out = subprocess.run(
            [sys.executable, "-m", "shared.tenancy", f"create-{role}", "--owner", owner],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        # The key is the last line: an audit log line may come before it.
        return out.stdout.strip().splitlines()[-1]

    def _start_function(self, function: str, env: dict[str, str]) -> str:
        port = free_port()
        self.processes[function] = spawn(
            function_command(function, port),
            {**env, "K_SERVICE": function},
            self.state_dir / f"{function}.log",
        )
        return f"http://127.0.0.1:{port}"

    def _start_router(self, functions: dict[str, str]) -> str:
        from werkzeug.serving import make_server

        router = Router({f: u for f, u in functions.items()})
        self._server = make_server(
            "127.0.0.1", self.port, router, threaded=True, request_handler=RedactingRequestHandler
        )
        self._server.daemon_threads = True
        port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        for proc in self.processes.values():
            stop_process(proc, signal.SIGTERM)
        self.processes.clear()
        if self.valkey is not None:
            self.valkey.stop()
        if self.postgres is not None:
            self.postgres.stop()


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in the project root, its output in `log`, SIGTERMed by the kernel if we die."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )


def function_command(function: str, port: int) -> list[str]:
    """How Cloud Run serves a function, on this machine: functions-framework on `port`."""
    source = str(ROOT / "functions" / function / "main.py")
    return [
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        "handle",
        "--source",
        source,
        "--port",
        str(port),
    ]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout_s}s")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}; see .local/*.log")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s")


def _key_valid(key: str, env: dict[str, str]) -> bool:
    probe = (
        "import sys; from shared.container import get_container;"
        "get_container().keys.resolve(sys.argv[1])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, key], env=env, capture_output=True, cwd=ROOT, check=False
    )
    return result.returncode == 0

"""The whole local stack, with every part reachable for breaking and mending.

`FaultStack` starts `devstack.LocalStack` (embedded PostgreSQL and Valkey, one
functions-framework process per function, the router) with Mistral played by
an in-process `StandIn` behind a `TcpProxy`, so a test can queue upstream
faults, count upstream calls, read Mistral's own history of a conversation,
slow streams down, stop or kill PostgreSQL and Valkey, and SIGKILL a function
and start its replacement on the same port, as Cloud Run replaces a crashed
instance. Settings are short on purpose (timeouts of a second or two) so a
fault is answered quickly enough to test many of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pg8000.native
import psutil

from devstack.servers import die_with_parent, free_port
from devstack.stack import ROOT, LocalStack, StackInfo, function_command
from devstack.standin import StandIn
from reliability.proxy import TcpProxy
from shared.http import routes

__all__ = ["DEFAULT_ENV", "FaultStack", "Tenant"]

# The functions' settings under test: short timeouts, so every fault answers in seconds.
DEFAULT_ENV = {
    "RATE_LIMIT_REQUESTS": "100000",
    "RATE_LIMIT_WINDOW": "60",
    "BREAKER_FAILURE_THRESHOLD": "1000",
    "MISTRAL_TIMEOUT_MS": "3000",
    "MISTRAL_CONNECT_TIMEOUT_MS": "500",
    "MISTRAL_RETRY_MAX_MS": "2000",
    "DB_POOL_SIZE": "4",
    "DB_POOL_TIMEOUT_MS": "1500",
    "REDIS_TIMEOUT_MS": "100",
    "REVOCATION_CACHE_S": "1",
    "LOG_LEVEL": "WARNING",
}
UPSTREAM_KEY = "reliability-upstream-key"


@dataclass(frozen=True)
class Tenant:
    """One gateway key: its tenant, role, id and secret."""

    owner: str
    role: str
    key_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass
class FaultStack:
    state_dir: Path
    threads: int = 8
    env: dict[str, str] = field(default_factory=dict)
    standin: StandIn = field(init=False)
    proxy: TcpProxy = field(init=False)
    local: LocalStack = field(init=False)
    info: StackInfo = field(init=False)
    _function_env: dict[str, str] = field(init=False, default_factory=dict)
    # Set by anything that breaks a part, so that `mend` knows to check every part.
    _broken: bool = field(init=False, default=False)
    _ports: dict[str, int] = field(init=False, default_factory=dict)

    def start(self) -> FaultStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.standin = StandIn().start()
        self.proxy = TcpProxy(self.standin.port).start()
        env = {
            **DEFAULT_ENV,
            **self.env,
            "MISTRAL_API_KEY": UPSTREAM_KEY,
            "MISTRAL_SERVER_URL": self.proxy.url,
        }
        # Durable: with fsync or synchronous_commit off, a killed server forgets commits
        # it acknowledged, and a test of "nothing told stored is lost" would test nothing.
        self.local = LocalStack(
            state_dir=self.state_dir, port=0, env=env, durable=True, threads=self.threads
        )
        try:
            self.info = self.local.start()
        except BaseException:
            self.stop()
            raise
        self._function_env = {
            **os.environ,
            **env,
            "ENVIRONMENT": "local",
            "DATABASE_URL": self.info.database_url,
            "REDIS_URL": self.info.redis_url,
            "THREADS": str(self.threads),
            "PYTHONPATH": str(ROOT),
        }
        self._ports = {f: int(u.rsplit(":", 1)[1]) for f, u in self.info.functions.items()}
        return self

    def stop(self) -> None:
        # SIGKILL first: a graceful gunicorn stop waits for kept-alive connections,
        # and nothing of a test stack needs to be kept.
        for function in list(self.local.processes) if hasattr(self, "local") else []:
            with contextlib.suppress(Exception):
                self.kill_function(function)
        with contextlib.suppress(Exception):
            self.local.stop()
        with contextlib.suppress(Exception):
            self.proxy.stop()
        with contextlib.suppress(Exception):
            self.standin.stop()

    # -- reaching the stack --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.info.url

    def client(self, timeout_s: float = 15) -> httpx2.Client:
        return httpx2.Client(base_url=self.info.url, timeout=timeout_s)

    def tenant(self, owner: str, role: str = "user", **limits: int) -> Tenant:
        """A new key for `owner` (and the tenant, if new), made by the stack's operator key.

        A tenant id is 1 to 128 letters, digits, '.', '_' or '-': a name derived from a
        test's id is folded into that (the Tenant returned carries the id used).
        """
        owner = re.sub(r"[^A-Za-z0-9._-]", "-", owner)[:128]
        operator = {"Authorization": f"Bearer {self.info.operator_key}"}
        made = httpx2.post(
            self.url + routes.GATEWAY_PREFIX + "/tenants",
            json={"id": owner, "name": owner},
            headers=operator,
            timeout=15,
        )
        if made.status_code != 409:  # 409: the tenant exists already
            made.raise_for_status()
        answer = httpx2.post(
            self.url + routes.GATEWAY_PREFIX + "/keys",
            json={"name": f"{role} of {owner}", "role": role, "owner_id": owner, **limits},
            headers=operator,
            timeout=15,
        )
        answer.raise_for_status()
        body = answer.json()
        return Tenant(owner, role, body["key"]["id"], body["secret"])

    def upstream_history(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """Mistral's own entries of a conversation (None if Mistral does not have it)."""
        answer = httpx2.get(
            f"{self.standin.url}/v1/conversations/{conversation_id}/history",
            headers={"Authorization": "Bearer reliability"},
            timeout=10,
        )
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries

    # -- the database, read directly ----------------------------------------------------------

    @contextlib.contextmanager
    def database(self, timeout_s: float = 20) -> Iterator[pg8000.native.Connection]:
        """A fresh connection (retried while the server comes back up)."""
        port = int(self.info.database_url.rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn = pg8000.native.Connection(
                    "postgres", host="127.0.0.1", port=port, database="gateway", timeout=10
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.database() as conn:
            rows = conn.run(sql, **params)
            names = [c["name"] for c in conn.columns or []]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def stored_entries(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT id, type, status, body FROM conversation_entries"
            " WHERE conversation_id = :id ORDER BY seq",
            id=conversation_id,
        )

    def stored_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        found = self.rows(
            "SELECT id, owner_id, agent_id, status FROM conversations WHERE id = :id",
            id=conversation_id,
        )
        return found[0] if found else None

    # -- breaking and mending -----------------------------------------------------------------

    def inject(self, fault: str, count: int = 1, operation: str | None = None) -> None:
        self.standin.inject(fault, count, operation)

    def clear_faults(self) -> None:
        self.standin.clear_faults()
        self.proxy.throttle(0)

    def stop_postgres(self) -> None:
        self._broken = True
        assert self.local.postgres is not None
        self.local.postgres.stop()

    def kill_postgres(self) -> None:
        self._broken = True
        assert self.local.postgres is not None
        self.local.postgres.kill()

    def start_postgres(self) -> None:
        assert self.local.postgres is not None
        if self.local.postgres.proc is None:
            self.local.postgres.start()

    def stop_redis(self) -> None:
        self._broken = True
        assert self.local.valkey is not None
        self.local.valkey.stop()

    def start_redis(self) -> None:
        assert self.local.valkey is not None
        if self.local.valkey.proc is None:
            self.local.valkey.start()

    def kill_function(self, function: str) -> None:
        """SIGKILL a function's gunicorn arbiter and its worker, as an instance crash does."""
        self._broken = True
        proc = self.local.processes[function]
        with contextlib.suppress(psutil.NoSuchProcess):
            # The worker first: killed alone, the arbiter would leave it serving for a second.
            for member in [*psutil.Process(proc.pid).children(True), psutil.Process(proc.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.send_signal(signal.SIGKILL)
        # Only the arbiter is our child to reap; a killed process holds no socket open.
        proc.wait(10)

    def _spawn(
        self, function: str, port: int, extra_env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / f"{function}.log", "ab")  # noqa: SIM115
        try:
            return subprocess.Popen(
                function_command(function, port),
                env={**self._function_env, **extra_env, "K_SERVICE": function},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        finally:
            log.close()

    def replace_function(self, function: str, extra_env: dict[str, str] | None = None) -> None:
        """Start a new process for `function` on its old port (the router's backend)."""
        self.local.processes[function] = self._spawn(
            function, self._ports[function], extra_env or {}
        )
        self.wait_healthy(function)

    @contextlib.contextmanager
    def extra_function(self, function: str, extra_env: dict[str, str]) -> Iterator[str]:
        """One more instance of `function`, with settings of its own, outside the router
        (another Cloud Run instance, or another configuration): yields its URL."""
        port = free_port()
        proc = self._spawn(function, port, extra_env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx2.HTTPError):
                    if httpx2.get(url + routes.health_path(function), timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"extra {function} did not start")
                time.sleep(0.1)
            yield url
        finally:
            with contextlib.suppress(psutil.NoSuchProcess):
                for member in [*psutil.Process(proc.pid).children(True), psutil.Process(proc.pid)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        member.send_signal(signal.SIGKILL)
            proc.wait(10)

    def alive(self, function: str) -> bool:
        return self.local.processes[function].poll() is None

    def wait_healthy(self, function: str, timeout_s: float = 60) -> float:
        """Seconds until the function's health route answers 200."""
        started = time.monotonic()
        url = self.info.functions[function] + routes.health_path(function)
        while time.monotonic() - started < timeout_s:
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"{function} was not healthy within {timeout_s}s")

    def wait_all_healthy(self, timeout_s: float = 60) -> None:
        for function in routes.FUNCTIONS:
            self.wait_healthy(function, timeout_s)

    def mend(self) -> None:
        """Everything back up: servers running, functions alive and healthy, no faults queued."""
        self.clear_faults()
        if not self._broken:
            return
        self.start_postgres()
        self.start_redis()
        for function in routes.FUNCTIONS:
            if not self.alive(function):
                self.replace_function(function)
        self.wait_all_healthy()
        self._broken = False

    def function_log(self, function: str) -> str:
        path = self.state_dir / f"{function}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, parsed data or the raw text) of each event of a relayed stream."""
    events: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name or data:
            raw = "\n".join(data)
            try:
                events.append((name, json.loads(raw)))
            except ValueError:
                events.append((name, raw))
    return events

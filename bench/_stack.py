"""The stack under test, and single function instances and stand-ins made to measure.

`BenchStack.start()` brings up the local stack (`devstack.stack.LocalStack`:
embedded PostgreSQL and Valkey, migrations, an admin key, every function and
the router) and a user key whose rate limit the benchmark can never reach.
Scenarios then start what they need beside it, each a separate process on
loopback as it would be deployed:

    standin(latency_ms=...)      a fresh Mistral stand-in
    instance("start", threads)   one function instance (functions-framework's
                                 gunicorn: one worker process, THREADS threads)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench._proc import ROOT, child_env, http, port, spawn, stop, wait_http, wait_port
from devstack.servers import die_with_parent
from devstack.stack import STANDIN_KEY, LocalStack, StackInfo, function_command
from shared.http import routes

__all__ = ["BenchStack", "Instance", "StandIn"]


def _deployed() -> tuple[dict[str, int], int]:
    """Each function's concurrency (= THREADS) and DB_POOL_SIZE, as the prod root deploys
    them (terraform/environments/prod/variables.tf defaults), so "as deployed" stays true."""
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    path = ROOT / "terraform" / "environments" / "prod" / "variables.tf"
    with path.open() as handle:
        blocks = hcl2.load(handle, serialization_options=options)["variable"]
    defaults = {name: v.get("default") for block in blocks for name, v in block.items()}
    threads = {f: int(spec["concurrency"]) for f, spec in defaults["functions"].items()}
    return threads, int(defaults["db_pool_size"])


# THREADS per function and the pool every instance gets, as Terraform deploys them.
DEPLOYED_THREADS_BY_FUNCTION, DEPLOYED_DB_POOL = _deployed()
DEPLOYED_THREADS = DEPLOYED_THREADS_BY_FUNCTION["start"]


# A per-key limit no benchmark reaches: the limiter always runs, never rejects.
BENCH_RATE_LIMIT = 1_000_000_000
MODEL = "mistral-small-latest"


@dataclass
class StandIn:
    url: str
    proc: Any
    # Latency per operation, queued as faults through the control API (kept across resets).
    delays: dict[str, int] = field(default_factory=dict)

    def queue_latency(self, operation: str, latency_ms: int) -> None:
        """Delay only `operation` (e.g. generation, not history reads)."""
        status, body = http(
            "POST",
            self.url + "/_standin/faults",
            {"fault": f"latency={latency_ms}", "count": 10_000_000, "operation": operation},
        )
        if status != 200:
            raise RuntimeError(f"stand-in refused the latency fault: {status} {body!r}")
        self.delays[operation] = latency_ms

    def calls(self) -> int:
        status, body = http("GET", self.url + "/_standin/calls")
        return sum(json.loads(body).values()) if status == 200 else -1

    def drain(self, quiet_s: float = 1.5, limit_s: float = 20) -> None:
        """Wait until no call has arrived for `quiet_s`: a closed-loop client leaves its
        last requests queued in the instance, which goes on calling the stand-in."""
        deadline = time.monotonic() + limit_s
        last, since = self.calls(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.calls()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return

    def reset(self) -> None:
        """Forget conversations (the store stays small), keep the queued latencies."""
        http("POST", self.url + "/_standin/reset")
        for operation, latency_ms in self.delays.items():
            self.queue_latency(operation, latency_ms)


@dataclass
class Instance:
    function: str
    url: str
    proc: Any
    threads: int

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


@dataclass
class BenchStack:
    state_dir: Path = ROOT / ".local" / "bench"
    env: dict[str, str] = field(default_factory=dict)
    stack: LocalStack | None = None
    info: StackInfo | None = None
    user_key: str = ""
    _children: list[Any] = field(default_factory=list)

    def start(self, attempts: int = 3) -> BenchStack:
        # A port picked free can be taken by another process before the server binds
        # it (the machine is shared): start again on fresh ports, a few times.
        for attempt in range(1, attempts + 1):
            try:
                return self._start()
            except RuntimeError:
                self.stop()
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> BenchStack:
        # A fresh database each run: the history seed is the only big data.
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self.state_dir.chmod(0o755)
        self.stack = LocalStack(
            state_dir=self.state_dir,
            port=0,
            env=self.env,
            durable=False,
            threads=DEPLOYED_THREADS,
        )
        self.info = self.stack.start()
        self.user_key = self.create_key("bench user", owner=None)
        return self

    def create_key(self, name: str, owner: str | None, role: str = "user") -> str:
        """A key of `role` in `owner`'s tenant (None: the admin key's) that no benchmark
        limits: a key's rate narrows its tenant's, so the tenant's is raised too."""
        assert self.info is not None
        body: dict[str, Any] = {"name": name, "role": role, "rate_limit_requests": BENCH_RATE_LIMIT}
        key = self.admin_key
        admin = self.functions["admin"]
        if owner is not None:
            # Another tenant: the operator makes it (if new) and its key.
            key = self.info.operator_key
            http("POST", admin + "/gateway/v1/tenants", {"id": owner, "name": owner}, key=key)
            body["owner_id"] = owner
        self._unlimit_tenant(owner)
        status, raw = http("POST", admin + "/gateway/v1/keys", body, key=key)
        if status != 200:
            raise RuntimeError(f"could not create a bench key: {status} {raw[:300]!r}")
        return str(json.loads(raw)["secret"])

    def _unlimit_tenant(self, owner: str | None) -> None:
        """Raise the tenant's request rate (None: the admin key's tenant) to the bench's."""
        assert self.info is not None
        admin = self.functions["admin"]
        if owner is None:
            status, raw = http("GET", admin + "/gateway/v1/whoami", key=self.admin_key)
            if status != 200:
                raise RuntimeError(f"whoami of the admin key: {status} {raw[:300]!r}")
            owner = str(json.loads(raw)["owner_id"])
        status, raw = http(
            "PATCH",
            admin + "/gateway/v1/tenants/" + quote(owner, safe=""),
            {"rate_limit_requests": BENCH_RATE_LIMIT},
            key=self.info.operator_key,
        )
        if status != 200:
            raise RuntimeError(f"could not raise tenant {owner}'s rate: {status} {raw[:300]!r}")

    @property
    def functions(self) -> dict[str, str]:
        assert self.info is not None
        return self.info.functions

    @property
    def admin_key(self) -> str:
        assert self.info is not None
        return self.info.admin_key

    def function_env(self, mistral_url: str, threads: int, function: str) -> dict[str, str]:
        """The environment LocalStack gives its functions, pointed at `mistral_url`."""
        assert self.info is not None
        return child_env(
            {
                **self.env,
                "ENVIRONMENT": "local",
                "DATABASE_URL": self.info.database_url,
                "REDIS_URL": self.info.redis_url,
                "MISTRAL_SERVER_URL": mistral_url,
                "MISTRAL_API_KEY": STANDIN_KEY,
                "THREADS": str(threads),
                "K_SERVICE": function,
            }
        )

    @contextlib.contextmanager
    def standin(self, latency_ms: int = 0, name: str = "standin") -> Iterator[StandIn]:
        for attempt in range(3):
            listen = port()
            proc = self._spawn_standin(listen, latency_ms, name)
            try:
                wait_port(listen, proc)
                break
            except RuntimeError:
                stop(proc)
                if attempt == 2:
                    raise
        try:
            yield StandIn(f"http://127.0.0.1:{listen}", proc)
        finally:
            stop(proc)

    def _spawn_standin(self, listen: int, latency_ms: int, name: str) -> Any:
        return spawn(
            [
                sys.executable,
                "-m",
                "devstack.standin",
                "--host",
                "127.0.0.1",
                "--port",
                str(listen),
                "--latency-ms",
                str(latency_ms),
            ],
            child_env(),
            self.state_dir / f"{name}.log",
        )

    def spawn_instance(
        self,
        function: str,
        threads: int,
        mistral_url: str,
        extra_env: dict[str, str] | None = None,
        root: Path | None = None,
        python: str | None = None,
    ) -> Instance:
        """Starts one instance and returns at once (cold-start timing starts here).

        `root` runs the function from another copy of the code (`bench.ab`: a commit
        against the work tree), its own directory first on the import path; `python`
        under another interpreter (with the runtime packages installed), the code's
        directory on its import path."""
        listen = port()
        env = {
            **self.function_env(mistral_url, threads, function),
            # Every instance gets Terraform's pool, whatever its THREADS.
            "DB_POOL_SIZE": str(DEPLOYED_DB_POOL),
            **(extra_env or {}),
        }
        command = function_command(function, listen)
        if python is not None:
            command[0] = python
            env["PYTHONPATH"] = str(root or ROOT)
        log = self.state_dir / f"{function}-{threads}-{listen}.log"
        if root is None:
            proc = spawn(command, env, log)
        else:
            command[command.index("--source") + 1] = str(root / "functions" / function / "main.py")
            env["PYTHONPATH"] = str(root)
            with open(log, "ab") as out:
                proc = subprocess.Popen(  # noqa: S603
                    command,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=root,
                    preexec_fn=die_with_parent,  # noqa: PLW1509
                )
        return Instance(function, f"http://127.0.0.1:{listen}", proc, threads)

    @contextlib.contextmanager
    def instance(
        self,
        function: str,
        threads: int,
        mistral_url: str,
        extra_env: dict[str, str] | None = None,
        root: Path | None = None,
        python: str | None = None,
    ) -> Iterator[Instance]:
        for attempt in range(3):
            inst = self.spawn_instance(function, threads, mistral_url, extra_env, root, python)
            try:
                wait_http(inst.url + routes.health_path(function), inst.proc)
                break
            except RuntimeError:  # exited: its port was taken meanwhile
                stop(inst.proc)
                if attempt == 2:
                    raise
        try:
            yield inst
        finally:
            stop(inst.proc)

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

"""`StandIn`: the stand-in server as an object that tests and the CLI start and stop."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from ._control import State
from ._faults import parse_fault
from ._http import Server
from ._persist import Persister


class StandIn:
    """A local Mistral Conversations & Agents API, served from a background thread.

    `latency_ms` delays every API answer (a fault's `latency=` replaces it for one request);
    `api_key`, when given, is the only bearer token accepted (otherwise any non-empty one is);
    `default_fault` applies to every API request that no header or queued fault covers;
    with `state_file`, conversations and agents outlive a restart (see `_persist`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: int = 0,
        api_key: str | None = None,
        default_fault: str | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port  # 0 picks a free port; start() replaces it with the real one
        fault = parse_fault(default_fault) if default_fault else None
        self._state = State(latency_ms, api_key, fault)
        self._persister = Persister(self._state.store, state_file) if state_file else None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def latency_ms(self) -> int:
        return self._state.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: int) -> None:
        self._state.latency_ms = value

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("StandIn is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> StandIn:
        if self._server is not None:
            raise RuntimeError("StandIn is already started")
        self._state.stopping.clear()
        if self._persister is not None:
            self._persister.start()
        self._server = Server((self.host, self.port), self._state)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the accept loop at most
            name=f"standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join()
        self._server = self._thread = None
        if self._persister is not None:
            self._persister.stop()

    def calls(self) -> dict[str, int]:
        """Requests received per operation, faulted and rejected ones included."""
        return self._state.calls()

    def inject(self, fault: str, count: int = 1, operation: str | None = None) -> None:
        """Queues `fault` for the next `count` requests (of `operation`, if given)."""
        self._state.inject(fault, count, operation)

    def clear_faults(self) -> int:
        return self._state.faults.clear()

    def reset(self) -> None:
        """Forgets all conversations, agents, call counts and queued faults."""
        self._state.reset()

    def __enter__(self) -> StandIn:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

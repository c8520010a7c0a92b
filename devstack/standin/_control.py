"""The run's shared state (store, faults, call counts, settings) and the `/_standin/` control API.

Control endpoints need no Authorization header, are never faulted and are not counted: they
belong to the test harness, not to the API under test.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from typing import Any

from ._faults import Fault, FaultQueue, parse_fault
from ._routes import OPERATIONS
from ._store import Store
from ._wire import ApiError, Reply, bad_request, error_payload

CONTROL_PREFIX = "/_standin/"


class State:
    def __init__(self, latency_ms: int, api_key: str | None, default_fault: Fault | None) -> None:
        self.latency_ms = latency_ms
        self.api_key = api_key
        self.default_fault = default_fault
        self.store = Store()
        self.faults = FaultQueue()
        # Set on stop, so that latency and timeout sleeps end at once.
        self.stopping = threading.Event()
        self._calls_lock = threading.Lock()
        self._calls = dict.fromkeys(OPERATIONS, 0)

    def count(self, operation: str) -> None:
        with self._calls_lock:
            self._calls[operation] += 1

    def calls(self) -> dict[str, int]:
        with self._calls_lock:
            return dict(self._calls)

    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()
        with self._calls_lock:
            self._calls = dict.fromkeys(OPERATIONS, 0)

    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self.api_key is None or secrets.compare_digest(token, self.api_key)

    def inject(self, spec: str, count: int, operation: str | None) -> Fault:
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = parse_fault(spec)
        self.faults.push(fault, count, operation)
        return fault

    def fault_for(self, operation: str, header: str | None) -> Fault | None:
        """The header wins over the queue, the queue over the run's default fault."""
        if header is not None:
            return parse_fault(header)
        return self.faults.take(operation) or self.default_fault

    def control(self, method: str, path: str, body: bytes) -> Reply:
        name = path.removeprefix(CONTROL_PREFIX)
        endpoints: dict[str, dict[str, Callable[[], Reply]]] = {
            "health": {"GET": lambda: Reply(200, {"status": "ok"})},
            "calls": {"GET": lambda: Reply(200, self.calls())},
            "reset": {"POST": self._reset_reply},
            "faults": {
                "GET": lambda: Reply(
                    200, {"queued": self.faults.pending(), "default": self._default()}
                ),
                "POST": lambda: self._queue_reply(body),
                "DELETE": lambda: Reply(200, {"cleared": self.faults.clear()}),
            },
        }
        methods = endpoints.get(name)
        if methods is None:
            return Reply(404, error_payload(f"No control endpoint {path!r}", "not_found"))
        if method not in methods:
            return Reply(
                405,
                error_payload(f"Method {method} not allowed on {path}", "method_not_allowed"),
                headers={"Allow": ", ".join(methods)},
            )
        try:
            return methods[method]()
        except ApiError as error:
            return error.reply()

    def _default(self) -> str | None:
        return self.default_fault.spec if self.default_fault else None

    def _reset_reply(self) -> Reply:
        self.reset()
        return Reply(200, {"reset": True})

    def _queue_reply(self, body: bytes) -> Reply:
        try:
            request: Any = json.loads(body or b"{}")
        except ValueError:
            raise bad_request("Invalid JSON body", "invalid_json") from None
        if not isinstance(request, dict) or not isinstance(request.get("fault"), str):
            raise bad_request(
                'Expected {"fault": str, "count"?: int, "operation"?: str}', "invalid_fault"
            )
        count, operation = request.get("count", 1), request.get("operation")
        if type(count) is not int or not isinstance(operation, str | None):
            raise bad_request("count must be an integer, operation a string", "invalid_fault")
        try:
            fault = self.inject(request["fault"], count, operation)
        except ValueError as error:
            raise bad_request(str(error), "invalid_fault") from None
        return Reply(200, {"queued": {"fault": fault.spec, "count": count, "operation": operation}})

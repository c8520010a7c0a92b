"""Fault injection: the syntax shared by the `x-standin-fault` header, the control API and the
CLI; the queue that hands faults to matching requests; and the body-bending faults.

Syntax: `;`-separated items, at most one action plus options, e.g. `status=429;retry_after=2`.

Actions that stop a request before it does anything (nothing is created or stored):
  status=CODE      answer CODE (400-599) with a JSON error body
  reset            close the connection with a TCP reset, no response
  timeout[=MS]     wait MS (default 600000) and then close the connection, no response
The same three with `_after` (status_after=503, reset_after, timeout_after=MS) act once the
operation has taken effect: a conversation IS created, then the client sees the failure.
Actions that bend the answer:
  cut=K            streams: send K events then drop the connection without the final chunk;
                   JSON answers: send the headers and the first K bytes, then drop it.
                   The turn (or other change) is NOT stored.
  malformed        200 with content-type application/json and a truncated, invalid JSON body
                   (streams: one event's data is truncated JSON); the operation takes effect.
  unknown_entry    add an entry of unknown type `message.thinking` to outputs/history/messages
                   (streams: a `message.thinking.delta` event); the operation takes effect.
Options:
  latency=MS       wait MS before answering, instead of the run's default latency
  retry_after=S    Retry-After header on a status action (a 429 gets 1 unless given)
  retry_after_ms=MS  retry-after-ms header on a status action
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

from ._wire import JSON, Event, Reply, error_payload, new_id, now

DEFAULT_TIMEOUT_MS = 600_000
# Actions that can happen before or `_after` the operation.
TERMINAL = frozenset({"status", "reset", "timeout"})

_ACTIONS: dict[str, tuple[str, bool]] = {
    "status": ("status", False),
    "status_after": ("status", True),
    "reset": ("reset", False),
    "reset_after": ("reset", True),
    "timeout": ("timeout", False),
    "timeout_after": ("timeout", True),
    "cut": ("cut", False),
    "malformed": ("malformed", False),
    "unknown_entry": ("unknown_entry", False),
}
_UNKNOWN_TYPE = "message.thinking"


@dataclass(frozen=True)
class Fault:
    """One parsed fault; `action` None only overrides the latency."""

    spec: str
    action: str | None = None
    after: bool = False
    latency_ms: int | None = None
    status: int = 0
    retry_after: int | None = None
    retry_after_ms: int | None = None
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    cut: int = 0


NO_FAULT = Fault(spec="")


def _number(name: str, raw: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"fault item {name!r} needs an integer value, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"fault item {name!r} must be {bounds}, got {value}")
    return value


def parse_fault(spec: str) -> Fault:
    """Parses the fault syntax above; raises ValueError with a readable reason."""
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, has_value, raw = (part.strip() for part in item.partition("="))
        if name in _ACTIONS:
            if "action" in options:
                raise ValueError(f"only one action per fault, got {spec!r}")
            options["action"], options["after"] = _ACTIONS[name]
            if options["action"] == "status":
                options["status"] = _number(name, raw, 400, 599)
            elif options["action"] == "cut":
                options["cut"] = _number(name, raw, 0)
            elif options["action"] == "timeout" and has_value:
                options["timeout_ms"] = _number(name, raw, 0)
            elif has_value:
                raise ValueError(f"fault item {name!r} takes no value")
        elif name == "latency":
            options["latency_ms"] = _number(name, raw, 0)
        elif name in ("retry_after", "retry_after_ms"):
            options[name] = _number(name, raw, 0)
        else:
            raise ValueError(f"unknown fault item {name!r}")
    if options.get("action") != "status" and (
        "retry_after" in options or "retry_after_ms" in options
    ):
        raise ValueError("retry_after and retry_after_ms need a status action")
    if options.get("status") == 429:
        options.setdefault("retry_after", 1)
    return Fault(spec=spec, **options)


def status_reply(fault: Fault) -> Reply:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    if fault.status == 429:
        payload = error_payload("Requests rate limit exceeded", "rate_limited", "rate_limited")
    else:
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:  # a code like 599 that has no standard name
            phrase = "Error"
        kind = "internal_server_error" if fault.status >= 500 else "invalid_request_error"
        payload = error_payload(f"{phrase} (injected by standin)", str(fault.status), kind)
    return Reply(fault.status, payload, headers=headers)


def _truncated(text: str) -> str:
    # Half of a JSON object or array always misses its closing bracket, so it never parses.
    return text[: max(1, len(text) // 2)]


def malformed(reply: Reply) -> Reply:
    if reply.events is not None:
        events = list(reply.events)
        index = min(1, len(events) - 1)
        name, data = events[index]
        events[index] = (name, _truncated(json.dumps(data)))
        return replace(reply, events=events)
    text = json.dumps(reply.payload if reply.payload is not None else {"object": "error"})
    return Reply(200, raw=_truncated(text).encode(), headers={"Content-Type": JSON})


def with_unknown_entry(reply: Reply) -> Reply:
    """Adds an entry (or stream event) of a type the SDK does not know, as a newer Mistral may."""
    entry: dict[str, Any] = {
        "object": "entry",
        "type": _UNKNOWN_TYPE,
        "id": new_id("msg"),
        "created_at": now(),
        "content": [{"type": "text", "text": "standin unknown entry"}],
    }
    if reply.events is not None:
        indexes = [d.get("output_index", 0) for _, d in reply.events if isinstance(d, dict)]
        event: Event = (
            f"{_UNKNOWN_TYPE}.delta",
            {
                "type": f"{_UNKNOWN_TYPE}.delta",
                "id": entry["id"],
                "output_index": max(indexes, default=-1) + 1,
                "content": "standin unknown entry",
                "created_at": entry["created_at"],
            },
        )
        # Before the final `conversation.response.done`, like any other output's deltas.
        return replace(reply, events=[*reply.events[:-1], event, *reply.events[-1:]])
    if isinstance(reply.payload, dict):
        for key in ("outputs", "entries", "messages"):
            if isinstance(reply.payload.get(key), list):
                return replace(reply, payload={**reply.payload, key: [*reply.payload[key], entry]})
    return reply


@dataclass
class _Queued:
    fault: Fault
    remaining: int
    operation: str | None


class FaultQueue:
    """Faults waiting for their next `count` matching requests, first queued first used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[_Queued] = []

    def push(self, fault: Fault, count: int, operation: str | None) -> None:
        with self._lock:
            self._items.append(_Queued(fault, count, operation))

    def take(self, operation: str) -> Fault | None:
        with self._lock:
            for item in self._items:
                if item.operation in (None, operation):
                    item.remaining -= 1
                    if item.remaining <= 0:
                        self._items.remove(item)
                    return item.fault
        return None

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._items)
            self._items.clear()
            return cleared

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"fault": i.fault.spec, "count": i.remaining, "operation": i.operation}
                for i in self._items
            ]

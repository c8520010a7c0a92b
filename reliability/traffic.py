"""Mixed conversation traffic at a steady rate: starts, appends, restarts, streams and reads.

    with Traffic(stack, tenants, rate=20) as traffic:
        traffic.phase = "postgres restart"
        ...break and mend something...
    verify(stack, traffic.ledger, traffic.owners)

A scheduler thread releases one request every 1/rate seconds to a pool of workers
(a request that finds every worker busy waits its turn, so a stall shows as latency,
not as a lower rate). Each turn is recorded in the `Ledger` with what its caller was
told; each answer, turn or read, is recorded as an `Answer` with its phase, status,
latency and Retry-After. Turns on one conversation never overlap (a conversation is
busy while a turn on it runs), as one user's turns would not. Reads check isolation
as they go: a tenant's list or history must never show another tenant's conversation.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx2

from reliability.harness import FaultStack, Tenant
from reliability.ledger import Ledger, TurnRecord, classify, classify_stream

__all__ = ["Answer", "Traffic"]

MODEL = "mistral-small-latest"


@dataclass(frozen=True)
class Answer:
    phase: str  # when it was sent
    kind: str  # start | append | restart | read
    status: int  # 0: no HTTP answer
    seconds: float
    retry_after: str | None
    error_type: str | None
    # When it was answered: a request sent just before a fault may meet it.
    answered_in: str = ""


@dataclass
class Traffic:
    stack: FaultStack
    tenants: list[Tenant]
    rate: float = 20.0
    workers: int = 6
    # Shares of each kind of request; streams are half of the starts and a third of appends.
    mix: dict[str, float] = field(
        default_factory=lambda: {"start": 0.25, "append": 0.25, "restart": 0.05, "read": 0.45}
    )
    max_requests: int = 1_000_000
    timeout_s: float = 30.0
    seed: int = 10
    phase: str = "steady"
    ledger: Ledger = field(default_factory=Ledger)
    answers: list[Answer] = field(default_factory=list)
    isolation_breaches: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=lambda: queue.Queue(maxsize=200))
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _busy: set[str] = field(default_factory=set)
    _ok: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _sent: int = 0

    @property
    def owners(self) -> list[str]:
        return [t.owner for t in self.tenants]

    def __enter__(self) -> Traffic:
        self._ok = {t.owner: [] for t in self.tenants}
        for i in range(self.workers):
            worker = threading.Thread(target=self._work, args=(i,), name=f"traffic-{i}")
            worker.daemon = True
            worker.start()
            self._threads.append(worker)
        scheduler = threading.Thread(target=self._schedule, name="traffic-clock", daemon=True)
        scheduler.start()
        self._threads.append(scheduler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending; wait for the requests in flight to be answered."""
        self._stop.set()
        for _ in range(self.workers):
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=self.timeout_s)
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    @property
    def sent(self) -> int:
        return self._sent

    def in_phase(self, phase: str) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.phase == phase]

    # -- the clock and the workers ------------------------------------------------------------

    def _schedule(self) -> None:
        rng = random.Random(self.seed)
        kinds, weights = zip(*self.mix.items(), strict=True)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set() and self._sent < self.max_requests:
            next_at += interval
            kind = rng.choices(kinds, weights)[0]
            try:
                self._queue.put(kind, timeout=1)
            except queue.Full:
                continue
            self._sent += 1
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _work(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        with httpx2.Client(base_url=self.stack.url, timeout=self.timeout_s) as client:
            while True:
                kind = self._queue.get()
                if kind is None:
                    return
                tenant = rng.choice(self.tenants)
                phase = self.phase
                started = time.monotonic()
                try:
                    status, retry_after, error_type = self._one(client, rng, kind, tenant, phase)
                except httpx2.HTTPError as exc:
                    status, retry_after, error_type = 0, None, type(exc).__name__
                with self._lock:
                    self.answers.append(
                        Answer(
                            phase,
                            kind,
                            status,
                            time.monotonic() - started,
                            retry_after,
                            error_type,
                            self.phase,
                        )
                    )

    def _take(self, rng: random.Random, owner: str) -> tuple[str, str] | None:
        """An idle conversation of `owner` that was stored ok, marked busy."""
        with self._lock:
            free = [c for c in self._ok[owner] if c[0] not in self._busy]
            if not free:
                return None
            chosen = rng.choice(free[-20:])
            self._busy.add(chosen[0])
            return chosen

    def _release(self, conversation_id: str | None) -> None:
        with self._lock:
            self._busy.discard(conversation_id or "")

    def _one(
        self, client: httpx2.Client, rng: random.Random, kind: str, tenant: Tenant, phase: str
    ) -> tuple[int, str | None, str | None]:
        if kind == "read":
            return self._read(client, rng, tenant)
        target = None if kind == "start" else self._take(rng, tenant.owner)
        if kind != "start" and target is None:
            kind = "start"
        try:
            return self._turn(client, rng, kind, tenant, phase, target)
        finally:
            self._release(target[0] if target else None)

    def _turn(
        self,
        client: httpx2.Client,
        rng: random.Random,
        kind: str,
        tenant: Tenant,
        phase: str,
        target: tuple[str, str] | None,
    ) -> tuple[int, str | None, str | None]:
        stream = rng.random() < (0.5 if kind == "start" else 0.33)
        body: dict[str, Any] = {"inputs": f"{kind} {rng.randrange(10**6)}", "stream": stream}
        if kind == "start":
            path = "/v1/conversations"
            body["model"] = MODEL
            body["completion_args"] = {"max_tokens": rng.randrange(5, 40)}
        elif kind == "append":
            assert target is not None
            path = f"/v1/conversations/{target[0]}"
        else:
            assert target is not None
            path = f"/v1/conversations/{target[0]}/restart"
            body["from_entry_id"] = target[1]
        headers = dict(tenant.headers)
        if stream:
            headers["Accept"] = "text/event-stream"
        status: int = 0
        retry_after: str | None = None
        error_type: str | None = None
        outcome: str = "failed"
        conversation_id: str | None = None
        outputs: tuple[str, ...] = ()
        try:
            if stream:
                with client.stream("POST", path, json=body, headers=headers) as answer:
                    status = answer.status_code
                    retry_after = answer.headers.get("Retry-After")
                    chunks, complete = [], True
                    try:
                        for chunk in answer.iter_text():
                            chunks.append(chunk)
                    except httpx2.HTTPError:
                        complete = False
                    text = "".join(chunks)
                if status == 200:
                    outcome, conversation_id, outputs = classify_stream(text, complete)
                else:
                    error_type = _error_type(text)
            else:
                reply = client.post(path, json=body, headers=headers)
                status = reply.status_code
                retry_after = reply.headers.get("Retry-After")
                outcome, conversation_id, outputs = classify(reply)
                if status != 200:
                    error_type = _error_type(reply.text)
        except httpx2.HTTPError as exc:
            error_type = type(exc).__name__
        if kind == "append":
            assert target is not None
            conversation_id = target[0]
        self.ledger.record(
            TurnRecord(
                owner=tenant.owner,
                operation=kind,
                stream=stream,
                outcome=outcome,
                status=status,
                conversation_id=conversation_id,
                output_ids=outputs,
                phase=phase,
                source_id=target[0] if target else None,
            )
        )
        if outcome == "ok" and conversation_id and kind != "append" and outputs:
            with self._lock:
                self._ok[tenant.owner].append((conversation_id, outputs[0]))
        return status, retry_after, error_type

    def _read(
        self, client: httpx2.Client, rng: random.Random, tenant: Tenant
    ) -> tuple[int, str | None, str | None]:
        with self._lock:
            mine = [c for c, _ in self._ok[tenant.owner]]
            others = {c for o, cs in self._ok.items() if o != tenant.owner for c, _ in cs}
        choice = rng.random()
        if mine and choice < 0.5:
            path = f"/v1/conversations/{rng.choice(mine[-50:])}/history"
        elif mine and choice < 0.7:
            path = f"/v1/conversations/{rng.choice(mine[-50:])}"
        else:
            path = "/v1/conversations?page=0&page_size=20"
        answer = client.get(path, headers=tenant.headers)
        if answer.status_code == 200:
            seen = _conversation_ids(answer.json())
            leaked = seen & others
            if leaked:
                with self._lock:
                    self.isolation_breaches.append(f"{tenant.owner} saw {sorted(leaked)}")
            return 200, None, None
        return answer.status_code, answer.headers.get("Retry-After"), _error_type(answer.text)


def _conversation_ids(body: Any) -> set[str]:
    if isinstance(body, list):
        return {str(c.get("id")) for c in body if isinstance(c, dict)}
    if isinstance(body, dict):
        found = {str(body["conversation_id"])} if "conversation_id" in body else set()
        if body.get("object") == "conversation":
            found.add(str(body.get("id")))
        return found
    return set()


def _error_type(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return "not-json"
    # The cause: Mistral's error body (the gateway's too) names it in `code`.
    return body.get("code") if isinstance(body, dict) else "not-json"

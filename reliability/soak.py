"""The soak: steady mixed traffic for minutes while faults are injected one after another.

    result = run(stack, SoakConfig(duration_s=180))
    assert result.clean, result.summary()

Traffic (`Traffic`: starts, appends, restarts, streams and reads of several tenants at
a fixed rate) runs throughout. After a quiet start, the faults of `FAULTS` are applied
one at a time, each held for a few seconds and then mended, with a recovery phase
after each; the list is cycled until the duration is over (or `max_requests` were
sent). At the end the traffic stops, everything is mended, and:

- every answer must be one the design documents for the phase it was sent in (or
  the one it was answered in: a request sent just before a fault may meet it)
  (200 always; Mistral's faults: 429 + Retry-After, 502, 504, or a stream ending in
  an error event; PostgreSQL and pool faults: 503 + Retry-After, or 200 with
  `Gateway-Stored: false`; a killed function: the load balancer's 502, or a stream cut);
- no read showed one tenant another tenant's conversation;
- the database agrees with what callers were told (`ledger.verify`): every turn told
  stored is stored whole, nothing told failed is stored, nothing is duplicated.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack
from reliability.ledger import verify
from reliability.traffic import Answer, Traffic

__all__ = ["FAULTS", "Fault", "SoakConfig", "SoakResult", "run"]

TURNS = ("conversations.start", "conversations.append", "conversations.restart")


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # mistral | redis | postgres | process
    apply: Callable[[FaultStack], Any]
    mend: Callable[[FaultStack, Any], None]
    hold_s: float


def _queue(spec: str, count: int, operations: tuple[str, ...] = TURNS) -> Fault:
    def apply(stack: FaultStack) -> None:
        for operation in operations:
            stack.inject(spec, count, operation)

    return Fault(f"Mistral {spec}", "mistral", apply, lambda s, _: s.clear_faults(), 4.0)


def _lock_table(stack: FaultStack) -> Any:
    """Hold every conversation write and read behind a lock, from another connection."""
    ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        with stack.database() as conn:
            conn.run("BEGIN")
            conn.run("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
            ready.set()
            release.wait(30)
            conn.run("ROLLBACK")

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    ready.wait(10)
    return release, thread


def _unlock_table(stack: FaultStack, held: Any) -> None:
    release, thread = held
    release.set()
    thread.join(10)


def _killed(function: str) -> Fault:
    return Fault(
        f"{function} function SIGKILLed, then replaced",
        "process",
        lambda s: s.kill_function(function),
        lambda s, _: s.replace_function(function),
        1.0,
    )


FAULTS: tuple[Fault, ...] = (
    _queue("status=429;retry_after=1", 6),
    _queue("status=500", 6),
    _queue("status=503;retry_after=2", 6),
    _queue("reset", 6),
    _queue("timeout=5000", 3),
    _queue("latency=4000", 3),
    _queue("cut=5", 6),
    _queue("malformed", 6),
    _queue("unknown_entry", 6),
    _queue("status_after=503", 6),
    _queue("status=503", 9, ("conversations.history",)),
    Fault("Valkey stopped", "redis", FaultStack.stop_redis, lambda s, _: s.start_redis(), 4.0),
    Fault(
        "PostgreSQL stopped and restarted",
        "postgres",
        FaultStack.stop_postgres,
        lambda s, _: s.start_postgres(),
        3.0,
    ),
    Fault(
        "PostgreSQL SIGKILLed and restarted",
        "postgres",
        FaultStack.kill_postgres,
        lambda s, _: s.start_postgres(),
        3.0,
    ),
    Fault("connection pool exhausted (table locked)", "pool", _lock_table, _unlock_table, 3.0),
    _killed("start"),
    _killed("history"),
)


def documented(answer: Answer, kind: str) -> bool:
    """Whether an answer is one the design documents, for a fault of `kind` (or none)."""
    if answer.status == 200:
        return True
    if kind == "mistral":
        if answer.status == 429:
            return answer.retry_after is not None
        return answer.status in (502, 504) and answer.error_type in (
            "upstream_unavailable",
            "upstream_timeout",
        )
    if kind in ("postgres", "pool"):
        return (
            answer.status == 503
            and answer.retry_after is not None
            and answer.error_type == "service_unavailable"
        )
    if kind == "process":
        return answer.status == 502 and answer.error_type == "backend_unavailable"
    return False


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 180.0
    rate: float = 20.0
    workers: int = 6
    tenants: int = 3
    max_requests: int = 20_000
    quiet_s: float = 5.0
    recovery_s: float = 4.0
    seed: int = 10


@dataclass
class SoakResult:
    config: SoakConfig
    seconds: float = 0.0
    requests: int = 0
    requests_under_fault: int = 0
    faults_injected: int = 0
    phases: list[dict[str, Any]] = field(default_factory=list)
    turns: dict[str, int] = field(default_factory=dict)
    undocumented: list[str] = field(default_factory=list)
    isolation_breaches: list[str] = field(default_factory=list)
    data_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.undocumented or self.isolation_breaches or self.data_problems)

    def summary(self) -> str:
        lines = [
            f"{self.requests} requests in {self.seconds:.0f}s, {self.faults_injected} faults,"
            f" {self.requests_under_fault} requests under fault, turns {self.turns}",
            *(f"undocumented: {u}" for u in self.undocumented[:20]),
            *(f"isolation: {b}" for b in self.isolation_breaches[:20]),
            *(f"{k}: {v[:5]}" for k, v in self.data_problems.items()),
        ]
        return "\n".join(lines)


def _phase(traffic: Traffic, name: str, kind: str, seconds: float, deadline: float) -> None:
    traffic.phase = f"{kind}:{name}"
    end = min(time.monotonic() + seconds, deadline)
    while time.monotonic() < end and traffic.sent < traffic.max_requests:
        time.sleep(0.1)


def run(stack: FaultStack, config: SoakConfig) -> SoakResult:
    """Run the soak on `stack` (which it leaves mended) and check everything."""
    tenants = [stack.tenant(f"soak-{config.seed}-{i}") for i in range(config.tenants)]
    result = SoakResult(config)
    started = time.monotonic()
    deadline = started + config.duration_s
    with Traffic(
        stack,
        tenants,
        rate=config.rate,
        workers=config.workers,
        max_requests=config.max_requests,
        seed=config.seed,
    ) as traffic:
        _phase(traffic, "quiet", "none", config.quiet_s, deadline)
        index = 0
        while time.monotonic() < deadline - 2 and traffic.sent < config.max_requests:
            fault = FAULTS[index % len(FAULTS)]
            index += 1
            traffic.phase = f"{fault.kind}:{fault.name}"
            held = fault.apply(stack)
            result.faults_injected += 1
            try:
                _phase(traffic, fault.name, fault.kind, fault.hold_s, deadline + 30)
            finally:
                fault.mend(stack, held)
            # What is answered while it recovers is judged by the fault it recovers from.
            _phase(traffic, f"{fault.name} (recovery)", fault.kind, config.recovery_s, deadline)
    with contextlib.suppress(Exception):
        stack.mend()
    result.seconds = time.monotonic() - started
    result.requests = len(traffic.answers)
    _judge(result, traffic)
    result.data_problems = verify(stack, traffic.ledger, traffic.owners)
    result.isolation_breaches = list(traffic.isolation_breaches)
    result.turns = traffic.ledger.counts()
    _record(result)
    return result


def _judge(result: SoakResult, traffic: Traffic) -> None:
    by_phase: dict[str, list[Answer]] = {}
    for answer in traffic.answers:
        by_phase.setdefault(answer.phase, []).append(answer)
    for phase, answers in by_phase.items():
        kind, _, name = phase.partition(":")
        if kind != "none":
            result.requests_under_fault += len(answers)
        bad = [
            a
            for a in answers
            if not documented(a, kind) and not documented(a, a.answered_in.partition(":")[0])
        ]
        result.undocumented += [
            f"{phase}: {a.kind} {a.status} {a.error_type} retry-after={a.retry_after}" for a in bad
        ]
        result.phases.append(
            {
                "phase": name,
                "kind": kind,
                "requests": len(answers),
                "answers": status_counts(a.status for a in answers),
                "undocumented": len(bad),
                "slowest_s": round(max(a.seconds for a in answers), 2),
            }
        )


def _record(result: SoakResult) -> None:
    figures.add("soak_requests", result.requests)
    figures.add("requests_under_fault", result.requests_under_fault)
    figures.add("faults_injected", result.faults_injected)
    figures.add("soak_seconds", round(result.seconds))
    merged: dict[str, dict[str, Any]] = {}
    for phase in result.phases:
        row = merged.setdefault(
            phase["phase"],
            {"kind": phase["kind"], "requests": 0, "answers": Counter(), "undocumented": 0},
        )
        row["requests"] += phase["requests"]
        row["answers"].update(phase["answers"])
        row["undocumented"] += phase["undocumented"]
    for name, row in merged.items():
        figures.scenario(
            "soak",
            name,
            kind=row["kind"],
            requests=row["requests"],
            answers=dict(sorted(row["answers"].items())),
            undocumented=row["undocumented"],
        )
    figures.scenario(
        "soak",
        "verdict",
        turns=result.turns,
        data_problems={k: len(v) for k, v in result.data_problems.items()},
        isolation_breaches=len(result.isolation_breaches),
        undocumented=len(result.undocumented),
        seconds=round(result.seconds),
        config=result.config.__dict__,
    )

"""A circuit breaker for Mistral whose state every instance shares through Redis.

    closed     calls go through; failures are counted in a window of `cooldown_s`
    open       after `threshold` failures: calls fail fast (503 + Retry-After)
    half_open  once the cooldown ends: one trial call goes through; its success
               closes the circuit for everyone, its failure opens it again

Redis holds the truth (`gw:cb:<name>:open_until`, a failure counter that
expires after the cooldown, and a trial lock), so one instance's failures
protect all.
Each instance caches what it read for a fraction of a second, so the breaker
adds no Redis round trip to most requests. When Redis is unreachable, a local
breaker with the same rules takes over for this instance alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis

from shared.errors import CircuitOpen

__all__ = ["Breaker", "BreakerState", "Circuit"]

log = logging.getLogger(__name__)

# How long an instance trusts the state it last read from Redis.
_CACHE_S = 0.25

# KEYS: failures, open_until, trial. ARGV: threshold, cooldown ms, now ms, is trial (0/1).
# Returns 1 if this failure opened (or re-opened) the circuit.
_RECORD_FAILURE = """
local reopen = ARGV[4] == '1'
if not reopen then
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  reopen = n >= tonumber(ARGV[1]) and redis.call('EXISTS', KEYS[2]) == 0
end
if reopen then
  redis.call('SET', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]))
  redis.call('DEL', KEYS[1], KEYS[3])
  return 1
end
return 0
"""


class Circuit(StrEnum):
    """The circuit's state; its value is what logs and the health answer show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerState:
    state: Circuit
    retry_after_s: float = 0.0


class _LocalBreaker:
    """The same rules, in this process only: the fallback while Redis is away."""

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures: list[float] = []
        self.open_until = 0.0
        self.trial = False
        self.lock = threading.Lock()

    def before(self) -> BreakerState:
        with self.lock:
            now = self.clock()
            if now < self.open_until:
                return BreakerState(Circuit.OPEN, self.open_until - now)
            if self.open_until and not self.trial:
                self.trial = True
                return BreakerState(Circuit.HALF_OPEN)
            if self.open_until:
                return BreakerState(Circuit.OPEN, self.cooldown_s)
            return BreakerState(Circuit.CLOSED)

    def success(self) -> bool:
        with self.lock:
            was_open = bool(self.open_until)
            self.failures.clear()
            self.open_until = 0.0
            self.trial = False
            return was_open

    def failure(self) -> bool:
        with self.lock:
            now = self.clock()
            if self.trial:
                self.trial = False
                self.open_until = now + self.cooldown_s
                return True
            self.failures = [t for t in self.failures if now - t < self.cooldown_s] + [now]
            if len(self.failures) >= self.threshold and not self.open_until:
                self.open_until = now + self.cooldown_s
                self.failures.clear()
                return True
            return False


class Breaker:
    def __init__(
        self,
        client: Callable[[], redis.Redis],
        *,
        name: str = "mistral",
        threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_transition: Callable[[Circuit], None] | None = None,
    ) -> None:
        self._client = client
        self._failures, self._open_until, self._trial = (
            f"gw:cb:{name}:failures",
            f"gw:cb:{name}:open_until",
            f"gw:cb:{name}:trial",
        )
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._local = _LocalBreaker(threshold, cooldown_s, clock)
        self._cached: tuple[float, BreakerState] | None = None
        self._redis_ok = True
        self._on_transition = on_transition
        self._script: redis.commands.core.Script | None = None

    def before_call(self) -> BreakerState:
        """Raise CircuitOpen if calls must not go through; else the state they go in."""
        state = self._state()
        if state.state is Circuit.OPEN:
            raise CircuitOpen(state.retry_after_s)
        return state

    def current(self) -> Circuit:
        """The state as last seen, for logs and health (no trial is claimed)."""
        cached = self._cached
        return cached[1].state if cached else Circuit.CLOSED

    def _state(self) -> BreakerState:
        now = self._clock()
        cached = self._cached
        # A cached "closed" or "open" is good for a moment; "half_open" means this
        # instance held the trial, which must never be handed out twice.
        if (
            cached is not None
            and now - cached[0] < _CACHE_S
            and (cached[1].state is Circuit.CLOSED or now < cached[0] + cached[1].retry_after_s)
        ):
            return cached[1]
        try:
            state = self._read(now)
            self._redis_ok = True
        except (redis.RedisError, OSError):
            if self._redis_ok:
                log.warning("redis unavailable: circuit breaker falls back to local state")
            self._redis_ok = False
            state = self._local.before()
        self._cached = (now, state)
        return state

    def _read(self, now: float) -> BreakerState:
        client = self._client()
        raw = client.get(self._open_until)
        if raw is None:
            return BreakerState(Circuit.CLOSED)
        open_until = float(raw) / 1000
        if now < open_until:
            return BreakerState(Circuit.OPEN, open_until - now)
        # The cooldown is over: one caller, across all instances, gets to try.
        if client.set(self._trial, "1", nx=True, px=int(self.cooldown_s * 1000)):
            return BreakerState(Circuit.HALF_OPEN)
        return BreakerState(Circuit.OPEN, 1.0)

    def record_success(self, state: BreakerState) -> None:
        if not self._redis_ok:
            if self._local.success():
                self._transition(Circuit.CLOSED)
            return
        if state.state is not Circuit.HALF_OPEN:
            return
        try:
            self._client().delete(self._open_until, self._trial, self._failures)
        except (redis.RedisError, OSError):
            return
        self._cached = (self._clock(), BreakerState(Circuit.CLOSED))
        self._transition(Circuit.CLOSED)

    def record_failure(self, state: BreakerState) -> None:
        if not self._redis_ok:
            if self._local.failure():
                self._opened_locally()
            return
        now = self._clock()
        try:
            if self._script is None:
                self._script = self._client().register_script(_RECORD_FAILURE)
            opened = self._script(
                keys=[self._failures, self._open_until, self._trial],
                args=[
                    self.threshold,
                    int(self.cooldown_s * 1000),
                    int(now * 1000),
                    int(state.state is Circuit.HALF_OPEN),
                ],
            )
        except (redis.RedisError, OSError):
            self._redis_ok = False
            if self._local.failure():
                self._opened_locally()
            return
        if opened:
            self._cached = (now, BreakerState(Circuit.OPEN, self.cooldown_s))
            self._transition(Circuit.OPEN)

    def _opened_locally(self) -> None:
        # The cached "closed" is trusted for _CACHE_S: without this, calls would still go
        # through for that long after the local breaker opened.
        self._cached = (self._clock(), BreakerState(Circuit.OPEN, self.cooldown_s))
        self._transition(Circuit.OPEN)

    def _transition(self, state: Circuit) -> None:
        if self._on_transition is not None:
            self._on_transition(state)
        else:
            log.warning("circuit %s", state)

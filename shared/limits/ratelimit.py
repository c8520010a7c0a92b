"""Per-key request limits and per-tenant token budgets, in one Redis round trip.

Requests are limited with GCRA (the generic cell rate algorithm, a token
bucket kept as one timestamp): `limit` requests per `window` seconds, bursts
up to `limit`. Token budgets are fixed minute and day buckets per tenant: an
estimate is reserved before the upstream call, in the same script, and the
difference to the real usage is settled afterwards (`settle`).

Both decisions are one Lua script, so a check is atomic across every instance
and costs one round trip. When Redis cannot be reached the limiter answers at
once in the configured mode (fail-open lets the request through, fail-closed
refuses it with 503), and stops asking Redis for a short while so an outage
does not add a timeout to every request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from shared.config import FailureMode
from shared.errors import RateLimited, ServiceUnavailable
from shared.redis_client import LuaScript, run_script

__all__ = ["Budget", "Decision", "Limit", "RateLimiter", "Reservation"]

log = logging.getLogger(__name__)

# After a Redis failure, skip Redis for this long (answers in the chosen mode).
_BACKOFF_S = 0.5

# KEYS: rate key, minute-budget key, day-budget key.
# ARGV: emission interval us, burst us (= limit x interval), token estimate, minute budget,
#       day budget, ms left in the minute bucket, ms left in the day bucket.
# Returns {allowed, remaining, reset_us, retry_us, reason}; reason 0 ok, 1 rate, 2 tokens.
#
# Time is counted in whole microseconds, so every value is an integer a double holds
# exactly (now is ~1.8e15 < 2^53) and the burst is exactly `limit` for any limit and
# window. The theoretical arrival time is stored with '%.0f': Lua's own number-to-string
# keeps only 14 significant digits, which would round it on every write.
# The rate half (GCRA), which `_RATE_PEEK` runs alone: refused for the rate, it returns.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > burst then
  return {0, 0, tat - now, new_tat - burst - now, 1}
end
"""
_SCRIPT = LuaScript(
    _GCRA
    + """
local estimate = tonumber(ARGV[3])
if estimate > 0 then
  local budgets = {{KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[6])},
                   {KEYS[3], tonumber(ARGV[5]), tonumber(ARGV[7])}}
  for _, b in ipairs(budgets) do
    if b[2] > 0 then
      local used = tonumber(redis.call('GET', b[1]) or 0)
      if used + estimate > b[2] then
        return {0, math.floor((burst - (tat - now)) / interval), tat - now, b[3] * 1000, 2}
      end
    end
  end
  for _, b in ipairs(budgets) do
    if b[2] > 0 then
      redis.call('INCRBY', b[1], estimate)
      redis.call('PEXPIRE', b[1], b[3] + 60000)
    end
  end
end

redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
           math.ceil((new_tat - now) / 1000))
return {1, math.floor((burst - (new_tat - now)) / interval), new_tat - now, 0, 0}
""",
)

# The rate half of `_SCRIPT`, read only: would the key's next request be refused for its
# rate now? KEYS and ARGV as `_SCRIPT`'s first; the same reply (its reason 1 or 0).
_RATE_PEEK = LuaScript(_GCRA + "return {1, 0, 0, 0, 0}\n")
# KEYS: the budget buckets of a reservation. ARGV: tokens to add (negative to give back).
# Only a bucket that still exists is corrected: one that expired (a long stream) or was
# never counted (that budget is off) is left alone, since INCRBY would create it without
# an expiry and it would stay in Redis for ever.
_SETTLE = LuaScript("""
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[1]) end
end
return 0
""")


# KEYS: the owner's minute and day budget buckets. ARGV: tokens spent, then each bucket's
# expiry in ms. Unlike a settlement, a charge is no correction of a reservation: the
# bucket is made if need be, with the expiry `check` gives it.
_CHARGE = LuaScript("""
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[1])
  redis.call('PEXPIRE', key, ARGV[i + 1])
end
return 0
""")


def _budget_keys(owner_id: str, minute: int, day: int) -> tuple[str, str]:
    """The owner's token buckets for a minute and a day (numbered from the epoch)."""
    return f"gw:tok:m:{owner_id}:{minute}", f"gw:tok:d:{owner_id}:{day}"


@dataclass(frozen=True)
class Limit:
    """`requests` per `window_s` seconds for one key."""

    requests: int
    window_s: int


@dataclass(frozen=True)
class Budget:
    """Tokens per minute and per day for one tenant (0: no budget)."""

    per_minute: int = 0
    per_day: int = 0

    @property
    def active(self) -> bool:
        return self.per_minute > 0 or self.per_day > 0


@dataclass(frozen=True)
class Reservation:
    """Tokens a call reserved and the budget buckets they went into, kept (as JSON) when
    the call's real spend is known only long after (a Mistral batch job's, when it ends)."""

    tokens: int
    minute_key: str
    day_key: str

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "minute_key": self.minute_key, "day_key": self.day_key}

    @classmethod
    def from_json(cls, value: Any) -> Reservation | None:
        """The reservation a `to_json` value names; None for anything else."""
        if not isinstance(value, dict):
            return None
        tokens, minute, day = value.get("tokens"), value.get("minute_key"), value.get("day_key")
        if not (isinstance(tokens, int) and isinstance(minute, str) and isinstance(day, str)):
            return None
        return cls(tokens, minute, day)


@dataclass(frozen=True)
class Decision:
    """The outcome of one check, with what the response headers need."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float = 0.0
    # "allowed", "limited" (requests), "budget" (tokens), "bypassed" (Redis away, fail-open)
    outcome: str = "allowed"
    reserved_tokens: int = 0
    minute_key: str = ""
    day_key: str = ""
    # Which of the two buckets the reservation went into (a budget that is off: not it).
    minute_reserved: bool = False
    day_reserved: bool = False

    def reservation(self) -> Reservation | None:
        """What this decision reserved, to settle later; None when it reserved nothing. A
        bucket it did not reserve in is named "" (nothing is given back to it)."""
        if self.reserved_tokens <= 0:
            return None
        return Reservation(
            self.reserved_tokens,
            self.minute_key if self.minute_reserved else "",
            self.day_key if self.day_reserved else "",
        )

    def headers(self) -> dict[str, str]:
        if self.outcome == "bypassed":
            return {}
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(math.ceil(self.reset_s)),
        }

    def raise_if_rejected(self) -> None:
        if self.allowed:
            return
        if self.outcome == "limited":
            what, code = "request rate limit", "rate_limited"
        else:
            what, code = "token budget", "token_budget_exceeded"
        raise RateLimited(f"{what} exceeded", self.retry_after_s, self.headers(), code=code)


class RateLimiter:
    def __init__(
        self,
        client: Callable[[], redis.Redis],
        *,
        failure_mode: FailureMode = FailureMode.FAIL_OPEN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._failure_mode = FailureMode(failure_mode)
        self._clock = clock
        self._down_until = 0.0

    def rate_refusal(self, key_id: str, limit: Limit) -> Decision | None:
        """The refusal `check` would give `key_id` for its request rate now, counting
        nothing; None when it would not refuse for the rate (or Redis cannot say: `check`
        then answers in the configured mode). For a call whose estimate is costly to
        make (a batch job's, read from its input files): a key over its rate is refused
        before it is made."""
        if time.monotonic() < self._down_until:
            return None
        interval_us = max(1, round(limit.window_s * 1_000_000 / limit.requests))
        try:
            allowed, _, reset_us, retry_us, _ = (
                int(x)
                for x in run_script(
                    self._client(),
                    _RATE_PEEK,
                    [f"gw:rl:{key_id}"],
                    [interval_us, interval_us * limit.requests],
                )
            )
        except (redis.RedisError, OSError) as exc:
            self._note_failure(exc)
            return None
        if allowed:
            return None
        return Decision(
            allowed=False,
            limit=limit.requests,
            remaining=0,
            reset_s=reset_us / 1_000_000,
            retry_after_s=retry_us / 1_000_000,
            outcome="limited",
        )

    def check(
        self,
        key_id: str,
        owner_id: str,
        limit: Limit,
        budget: Budget = Budget(),
        estimate: int = 0,
    ) -> Decision:
        """Count one request for `key_id`; reserve `estimate` tokens of the owner's budget."""
        now = self._clock()
        # A whole number of microseconds per request (off by at most 0.5 us), and a burst of
        # exactly `limit.requests` intervals: no float rounding can let one more or one
        # fewer request through.
        interval_us = max(1, round(limit.window_s * 1_000_000 / limit.requests))
        estimate = estimate if budget.active else 0
        minute, day = int(now // 60), int(now // 86_400)
        minute_key, day_key = _budget_keys(owner_id, minute, day)
        if time.monotonic() < self._down_until:
            return self._unavailable(limit, None)
        try:
            allowed, remaining, reset_us, retry_us, reason = self._run(
                keys=[f"gw:rl:{key_id}", minute_key, day_key],
                args=[
                    interval_us,
                    interval_us * limit.requests,
                    estimate,
                    budget.per_minute,
                    budget.per_day,
                    int(((minute + 1) * 60 - now) * 1000),
                    int(((day + 1) * 86_400 - now) * 1000),
                ],
            )
        except (redis.RedisError, OSError) as exc:
            # Any Redis failure, not only a lost connection: a demoted primary answers
            # READONLY, a full one OOM. Either way no decision can be had from it.
            return self._unavailable(limit, exc)
        outcome = "allowed" if allowed else ("limited" if reason == 1 else "budget")
        return Decision(
            allowed=bool(allowed),
            limit=limit.requests,
            remaining=int(remaining),
            reset_s=reset_us / 1_000_000,
            retry_after_s=retry_us / 1_000_000,
            outcome=outcome,
            reserved_tokens=estimate if allowed else 0,
            minute_key=minute_key,
            day_key=day_key,
            minute_reserved=bool(allowed and estimate and budget.per_minute > 0),
            day_reserved=bool(allowed and estimate and budget.per_day > 0),
        )

    def settle(self, decision: Decision, actual_tokens: int) -> None:
        """Replace the reserved estimate by the tokens really used (best effort)."""
        delta = actual_tokens - decision.reserved_tokens
        if not decision.reserved_tokens or delta == 0:
            return
        try:
            run_script(self._client(), _SETTLE, [decision.minute_key, decision.day_key], [delta])
        except (redis.RedisError, OSError) as exc:
            self._note_failure(exc)

    def charge(self, owner_id: str, tokens: int) -> None:
        """Count `tokens` spent outside any call's reservation (a Mistral batch job's,
        once it ended) against the owner's current minute and day buckets (best effort)."""
        if tokens <= 0:
            return
        now = self._clock()
        minute, day = int(now // 60), int(now // 86_400)
        try:
            run_script(
                self._client(),
                _CHARGE,
                list(_budget_keys(owner_id, minute, day)),
                [
                    tokens,
                    int(((minute + 1) * 60 - now) * 1000) + 60_000,
                    int(((day + 1) * 86_400 - now) * 1000) + 60_000,
                ],
            )
        except (redis.RedisError, OSError) as exc:
            self._note_failure(exc)

    def settle_reservation(self, owner_id: str, reserved: Reservation, actual_tokens: int) -> None:
        """Replace a reservation made long ago by the tokens really used (best effort): more
        than reserved is charged to the owner's current buckets (the spend happened, and the
        reservation's buckets may have expired); less gives the difference back to the
        reservation's own buckets while they still exist (a day that has ended keeps what
        it reserved: no later day is credited for it)."""
        delta = actual_tokens - reserved.tokens
        if delta > 0:
            self.charge(owner_id, delta)
        elif delta < 0:
            keys = [k for k in (reserved.minute_key, reserved.day_key) if k]
            if not keys:
                return
            try:
                run_script(self._client(), _SETTLE, keys, [delta])
            except (redis.RedisError, OSError) as exc:
                self._note_failure(exc)

    def _run(self, keys: list[str], args: list[float | int]) -> list[int]:
        return [int(x) for x in run_script(self._client(), _SCRIPT, keys, args)]

    def _note_failure(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _BACKOFF_S
        log.warning("redis unavailable for rate limiting: %s", type(exc).__name__)

    def _unavailable(self, limit: Limit, exc: BaseException | None) -> Decision:
        if exc is not None:
            self._note_failure(exc)
        if self._failure_mode is FailureMode.FAIL_CLOSED:
            raise ServiceUnavailable("rate limiting is unavailable; try again shortly", 1)
        return Decision(
            allowed=True,
            limit=limit.requests,
            remaining=limit.requests,
            reset_s=0,
            outcome="bypassed",
        )

"""The dependency container: the pool, Redis and Mistral clients, built lazily.

Each is built at first use, once per process, and reused by every request,
as Cloud Run instances should (clients are expensive; requests are many).
Tests build a `Container` with their own settings or objects and install it
with `set_container`; nothing patches module globals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from shared.config import Settings
from shared.heap import settle_heap

if TYPE_CHECKING:
    import redis

    from shared.conversations.policy import InputPolicy
    from shared.db import Pool
    from shared.limits.body_budget import BodyBudget
    from shared.limits.breaker import Breaker, Circuit
    from shared.limits.idempotency import Idempotency
    from shared.limits.ratelimit import RateLimiter
    from shared.mistral import MistralClient
    from shared.tenancy.keys import KeyCache

__all__ = ["Container", "get_container", "set_container"]

T = TypeVar("T")


class Container:
    """Process-wide services. Pass any of them in to override the default."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pool: Pool | None = None,
        redis_client: redis.Redis | None = None,
        mistral: MistralClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._services: dict[str, Any] = {
            "pool": pool,
            "redis": redis_client,
            "mistral": mistral,
        }
        self.clock = clock
        # Re-entrant: building one service may build another (the client needs the breaker).
        self._lock = threading.RLock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def _get(self, name: str, build: Callable[[], T]) -> T:
        service = self._services.get(name)
        if service is None:
            with self._lock:
                service = self._services.get(name)
                if service is None:
                    service = self._services[name] = build()
                    settle_heap(name)
        return service

    @property
    def pool(self) -> Pool:
        def build() -> Pool:
            from shared.db import Pool, connector_for

            s = self.settings
            return Pool(
                connector_for(s),
                size=s.db_pool_size,
                timeout_s=s.db_pool_timeout_ms / 1000,
                max_age_s=s.db_conn_max_age_s,
            )

        return self._get("pool", build)

    @property
    def redis(self) -> redis.Redis:
        def build() -> redis.Redis:
            from shared.redis_client import build_redis

            return build_redis(self.settings)

        return self._get("redis", build)

    @property
    def mistral(self) -> MistralClient:
        def build() -> MistralClient:
            from shared.mistral import build_client

            return build_client(self.settings, self.breaker)

        return self._get("mistral", build)

    @property
    def breaker(self) -> Breaker:
        def build() -> Breaker:
            from shared.limits.breaker import Breaker

            return Breaker(
                lambda: self.redis,
                threshold=self.settings.breaker_failure_threshold,
                cooldown_s=self.settings.breaker_cooldown_s,
                on_transition=self._circuit_transition,
            )

        return self._get("breaker", build)

    @property
    def keys(self) -> KeyCache:
        def build() -> KeyCache:
            from shared.tenancy.keys import KeyCache

            return KeyCache(lambda: self.pool, ttl_s=self.settings.revocation_cache_s)

        return self._get("keys", build)

    @property
    def limiter(self) -> RateLimiter:
        def build() -> RateLimiter:
            from shared.limits.ratelimit import RateLimiter

            return RateLimiter(
                lambda: self.redis, failure_mode=self.settings.rate_limit_failure_mode
            )

        return self._get("limiter", build)

    @property
    def body_budget(self) -> BodyBudget:
        """The bytes of large request bodies this process may hold at once."""

        def build() -> BodyBudget:
            from shared.limits.body_budget import BodyBudget

            return BodyBudget(self.settings.media_body_budget_bytes)

        return self._get("body_budget", build)

    def _circuit_transition(self, state: Circuit) -> None:
        from shared.observability import log_event

        # One line per transition: the log-based metric and alert count these.
        log_event("circuit_transition", "WARNING", state=state)

    @property
    def policy(self) -> InputPolicy:
        def build() -> InputPolicy:
            from shared.conversations.policy import InputPolicy

            s = self.settings
            return InputPolicy.from_config(
                s.input_policy_patterns,
                max_chars=s.max_input_chars,
                control_chars=s.input_control_chars,
            )

        return self._get("policy", build)

    @property
    def idempotency(self) -> Idempotency:
        def build() -> Idempotency:
            from shared.limits.idempotency import Idempotency

            s = self.settings
            # The first request holds a key for as long as a call to Mistral may take.
            return Idempotency(
                lambda: self.pool,
                ttl_s=s.idempotency_ttl_s,
                lock_s=s.mistral_timeout_ms / 1000 + 10,
            )

        return self._get("idempotency", build)

    def close(self) -> None:
        pool = self._services.get("pool")
        if pool is not None:
            pool.close()
        client = self._services.get("redis")
        if client is not None:
            client.close()


_current: Container | None = None
_current_lock = threading.Lock()


def get_container() -> Container:
    """The process's container, created from the environment on first use."""
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Container()
    return _current


def set_container(container: Container | None) -> Container | None:
    """Install a container (tests, the local stack); return the previous one."""
    global _current
    with _current_lock:
        previous, _current = _current, container
    return previous

"""The Redis (Memorystore) client: short timeouts, AUTH and TLS with the instance CA."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.config import Settings

__all__ = ["build_redis"]


def build_redis(settings: Settings) -> redis.Redis:
    """One client (with its own connection pool) for the whole process.

    Timeouts are short on purpose: a request must never hang on Redis; the
    rate limiter and breaker decide what to do when it is away (fail-open or
    fail-closed). Memorystore's server certificates rotate, so connections
    are re-established on error rather than pinned.
    """
    timeout = settings.redis_timeout_ms / 1000
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "retry_on_timeout": False,
        # No client-side retries: redis-py's default (3, with backoff) would turn
        # an outage into a stall; callers choose fail-open or fail-closed instead.
        "retry": Retry(NoBackoff(), 0),
        # Every request thread (and batch item worker) may hold one at once; past the
        # cap redis-py raises instead of waiting, and the limiter would fail open.
        "max_connections": _connections(settings),
    }
    if settings.redis_url:
        if settings.redis_ca_cert:
            common["ssl_ca_certs"] = _ca_file(settings.redis_ca_cert)
        return redis.Redis.from_url(settings.redis_url, **common)
    tls: dict[str, Any] = {}
    if settings.redis_tls:
        tls = {"ssl": True, "ssl_cert_reqs": "required"}
        if settings.redis_ca_cert:
            tls["ssl_ca_certs"] = _ca_file(settings.redis_ca_cert)
    return redis.Redis(
        host=settings.redis_host or "127.0.0.1",
        port=settings.redis_port,
        password=settings.redis_password or None,
        **common,
        **tls,
    )


def _connections(settings: Settings) -> int:
    return settings.concurrency + 16


def _ca_file(value: str) -> str:
    """REDIS_CA_CERT is a path, or the PEM itself as Secret Manager delivers it."""
    if "-----BEGIN" not in value:
        return value
    fd, path = tempfile.mkstemp(prefix="redis-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return path

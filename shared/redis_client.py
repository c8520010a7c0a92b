"""The Redis (Memorystore) client: short timeouts, AUTH and TLS with the instance CA."""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.config import Settings

__all__ = ["build_redis"]


class _SlowStart:
    """Opening a connection (TCP, TLS handshake, AUTH/HELLO) gets the connect timeout.

    redis-py applies `socket_connect_timeout` to the TCP connect only: the TLS handshake
    and the AUTH that follow run under `socket_timeout` (REDIS_TIMEOUT_MS, 100 ms), which a
    cold instance's first connection can overrun (Direct VPC egress still settling, a CPU
    busy starting up). Once open, the connection is back on the short command timeout.
    """

    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: Any
    _parser: Any

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        command_timeout = self.socket_timeout
        self.socket_timeout = self.socket_connect_timeout
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        finally:
            self.socket_timeout = command_timeout
            if self._sock is not None:
                self._sock.settimeout(command_timeout)
            buffer = getattr(self._parser, "_buffer", None)
            if buffer is not None:
                buffer.socket_timeout = command_timeout


class _Connection(_SlowStart, redis.Connection):
    pass


class _SSLConnection(_SlowStart, redis.SSLConnection):
    pass


def build_redis(settings: Settings) -> redis.Redis:
    """One client (with its own connection pool) for the whole process.

    Timeouts are short on purpose: a request must never hang on Redis; the
    rate limiter and breaker decide what to do when it is away (fail-open or
    fail-closed). Opening a connection gets longer (REDIS_CONNECT_TIMEOUT_MS),
    once. Memorystore's server certificates rotate, so connections are
    re-established on error rather than pinned.
    """
    common: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_ms / 1000,
        "socket_connect_timeout": settings.redis_connect_timeout_ms / 1000,
        "health_check_interval": 30,
        "retry_on_timeout": False,
        # No client-side retries: redis-py's default (3, with backoff) would turn
        # an outage into a stall; callers choose fail-open or fail-closed instead.
        "retry": Retry(NoBackoff(), 0),
        # Every request thread (and batch item worker) may hold one at once; past the
        # cap redis-py raises instead of waiting, and the limiter would fail open.
        "max_connections": _connections(settings),
    }
    tls = settings.redis_tls or settings.redis_url.startswith("rediss://")
    if tls:
        common.update(
            ssl_cert_reqs="required",
            ssl_check_hostname=settings.redis_tls_check_hostname,
            ssl_min_version=ssl.TLSVersion.TLSv1_2,
        )
        if settings.redis_ca_cert:
            common["ssl_ca_certs"] = _ca_file(settings.redis_ca_cert)
    connection_class = _SSLConnection if tls else _Connection
    if settings.redis_url:
        pool = redis.ConnectionPool.from_url(
            settings.redis_url, connection_class=connection_class, **common
        )
    else:
        pool = redis.ConnectionPool(
            connection_class=connection_class,
            host=settings.redis_host or "127.0.0.1",
            port=settings.redis_port,
            password=settings.redis_password or None,
            **common,
        )
    return redis.Redis(connection_pool=pool)


def _connections(settings: Settings) -> int:
    if settings.redis_max_connections:
        return settings.redis_max_connections
    threads = int(os.environ.get("THREADS", "16") or 16)
    return max(threads, settings.batch_concurrency) + 16


def _ca_file(value: str) -> str:
    """REDIS_CA_CERT is a path, or the PEM itself as Secret Manager delivers it."""
    if "-----BEGIN" not in value:
        return value
    fd, path = tempfile.mkstemp(prefix="redis-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return path

"""The Redis (Memorystore) client: short timeouts, AUTH and TLS with the instance CA.

`run_script` runs a Lua script on it per request at less CPU than redis-py's `Script`
(a helper of redis-py's own public API, not a protocol client of ours; see its docstring).
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.config import Settings

__all__ = ["LuaScript", "build_redis", "run_script"]


class _SlowStart:
    """Until this client has once connected, opening a connection gets the connect timeout.

    A cold instance's first connection can be slow: Direct VPC egress may take a while
    to connect on instance start, and the TLS handshake and AUTH then run on a CPU busy
    starting up. redis-py applies `socket_connect_timeout` to the TCP connect only; the
    handshake and AUTH run under `socket_timeout` (REDIS_TIMEOUT_MS, 100 ms). So until
    the first connection succeeds, every step of opening one gets
    REDIS_CONNECT_TIMEOUT_MS. After that the network is known to work, and a Redis that
    stops answering (frozen, overloaded) must cost a request no more than the short
    timeout: later connections open under REDIS_TIMEOUT_MS throughout.
    """

    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: Any
    _parser: Any
    # One per client (build_redis makes the subclass): {"connected": bool}.
    _first: dict[str, bool]

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self._sock is not None:
            return  # connected already: what redis-py's own method answers first
        if self._first["connected"]:
            command_timeout = self.socket_timeout
            self.socket_connect_timeout = command_timeout
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
            return
        command_timeout = self.socket_timeout
        self.socket_timeout = self.socket_connect_timeout
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
            self._first["connected"] = True
        finally:
            self.socket_timeout = command_timeout
            self._use_command_timeout(command_timeout)

    def _use_command_timeout(self, timeout: float | None) -> None:
        if self._sock is not None:
            self._sock.settimeout(timeout)
        # The parser keeps the timeout it sets back after a read with a timeout of its own:
        # the pure-Python parser on its socket buffer, hiredis's on itself.
        buffer = getattr(self._parser, "_buffer", None)
        if buffer is not None and hasattr(buffer, "socket_timeout"):
            buffer.socket_timeout = timeout
        if hasattr(self._parser, "_socket_timeout"):
            self._parser._socket_timeout = timeout


def _connection_class(tls: bool) -> type[redis.Connection]:
    """A connection class of this client's own, sharing its first-connection state."""
    base: type[redis.Connection] = redis.SSLConnection if tls else redis.Connection
    return type("GatewayRedisConnection", (_SlowStart, base), {"_first": {"connected": False}})


def build_redis(settings: Settings) -> redis.Redis:
    """One client (with its own connection pool) for the whole process.

    Timeouts are short on purpose: a request must never hang on Redis; the
    rate limiter and breaker decide what to do when it is away (fail-open or
    fail-closed). Opening the first connection gets longer
    (REDIS_CONNECT_TIMEOUT_MS). Memorystore's server certificates rotate, so connections are
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
    connection_class = _connection_class(tls)
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
    return settings.concurrency + 16


def _ca_file(value: str) -> str:
    """REDIS_CA_CERT is a path, or the PEM itself as Secret Manager delivers it."""
    if "-----BEGIN" not in value:
        return value
    fd, path = tempfile.mkstemp(prefix="redis-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return path


class LuaScript:
    """A Lua script's text and its SHA1, as `EVALSHA` names it."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # The name Redis gives a script (SCRIPT LOAD answers it), not a security hash.
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def run_script(client: redis.Redis, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
    """`EVALSHA` the script; load it and run it again if the server does not know it.

    What `client.register_script(text)(keys, args)` does (tests/functional/
    test_redis_script.py proves the replies equal), through one pooled connection's own
    `send_command`/`read_response`, as redis-py's pipelines use them, without `Script`'s
    and `Redis.execute_command`'s per-call layers (a `Retry` wrapper that retries nothing
    here, a reply-callback lookup, telemetry hooks). The pool still hands out a checked
    connection (reconnecting one the server closed) and takes it back; a connection that
    failed is dropped, as `execute_command` drops it. CPU per rate-limit check, in the
    same runs (bench/_notes.py, note 18): 0.77 x `Script`'s, both with hiredis (a
    scratch driver of `bench/ratelimit_loop.py`'s loop, 5 alternating rounds); with
    hiredis, 0.51 x the code before (`bench/ratelimit_loop.py`, 7 rounds).
    """
    try:
        return _evalsha(client.connection_pool, script.sha, keys, args)
    except redis.exceptions.NoScriptError:
        # Valkey restarted or its scripts were flushed: load it, as redis-py's Script does.
        client.script_load(script.text)
        return _evalsha(client.connection_pool, script.sha, keys, args)


def _evalsha(pool: redis.ConnectionPool, sha: str, keys: list[str], args: list[Any]) -> Any:
    conn = pool.get_connection()
    try:
        conn.send_command("EVALSHA", sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        return conn.read_response()
    except (redis.ConnectionError, redis.TimeoutError):
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(conn)

"""The health route every function answers: its real dependencies, checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import flask

from shared.http.web import Context, json_response

__all__ = ["health"]


def _check(probe: Callable[[], object]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:
        # The exception class says enough (refused, timeout); its text may hold addresses.
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def health(ctx: Context) -> flask.Response:
    """200 when PostgreSQL and Redis answer, 503 naming the one that does not.

    The circuit's state (as this instance last saw it) and the rate limiter's failure mode
    are reported too, for the console's health view; neither changes the status.
    """
    container = ctx.container

    def database() -> None:
        with container.pool.connection() as conn:
            conn.run("SELECT 1")

    checks = {
        "database": _check(database),
        "redis": _check(container.redis.ping),
    }
    ok = all(c["ok"] for c in checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "function": ctx.route.function,
        **checks,
        "circuit": container.breaker.current(),
        "rate_limit_failure_mode": container.settings.rate_limit_failure_mode,
    }
    headers = {} if ok else {"Retry-After": "5"}
    return json_response(body, 200 if ok else 503, headers)


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.shapes import BOOL, NUMBER, STRING, enum, obj, ref

    check = obj(
        {"ok": BOOL, "latency_ms": NUMBER, "error": STRING},
        ("ok",),
    )
    health = obj(
        {
            "status": enum("ok", "unavailable"),
            "function": STRING,
            "database": ref("DependencyCheck"),
            "redis": ref("DependencyCheck"),
            "circuit": enum("closed", "open", "half_open"),
            "rate_limit_failure_mode": enum("fail-open", "fail-closed"),
        },
        ("status", "function", "database", "redis", "circuit", "rate_limit_failure_mode"),
    )

    return {
        "Health": health,
        "DependencyCheck": check,
    }

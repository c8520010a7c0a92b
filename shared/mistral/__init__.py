"""The one place that talks to Mistral: the official SDK's client and plumbing,
with retries, a shared circuit breaker and error translation.

    client = build_client(settings, breaker)
    answer = client.call("conversations.get", "GET", "/v1/conversations/conv_1")
    stream = client.stream("conversations.start", "/v1/conversations", body)
"""

from __future__ import annotations

import os
from typing import Any, Literal

from shared.breaker import Breaker
from shared.config import Settings
from shared.mistral._client import (
    MistralClient,
    Retry,
    UpstreamResponse,
    UpstreamStream,
    retry_after_s,
)
from shared.mistral._transport import SDK_VERSION, SdkTransport, check_sdk

__all__ = [
    "HTTP_CLIENT",
    "HTTP_CLIENTS",
    "SDK_VERSION",
    "MistralClient",
    "Retry",
    "SdkTransport",
    "UpstreamResponse",
    "UpstreamStream",
    "build_client",
    "build_sdk",
    "check_sdk",
    "retry_after_s",
]


HttpClientName = Literal["lean", "httpx2"]
# The HTTP client under the SDK, chosen here and nowhere else: "lean" is
# shared.mistral._http on the standard library's sockets, "httpx2" the SDK's own.
# Lean: 333 -> 156 us of CPU per call through MistralClient (GET), 449 -> 203 per stream
# (python -m bench.http_cpu, median of 5 runs of 2,000 calls).
HTTP_CLIENT: HttpClientName = "lean"
HTTP_CLIENTS: tuple[HttpClientName, ...] = ("httpx2", "lean")


def build_sdk(
    settings: Settings, connections: int | None = None, *, http: HttpClientName = HTTP_CLIENT
) -> Any:
    """The official SDK client, configured once per process (once per pool of threads).

    Its HTTP client keeps one connection per request thread it serves alive (THREADS
    by default), with a short connect timeout and the long read timeout conversations need.
    """
    from mistralai.client import Mistral

    return Mistral(
        api_key=settings.mistral_api_key,
        server_url=settings.mistral_server_url,
        client=_http_client(settings, connections, _usable(http)),
    )


def _usable(http: HttpClientName) -> HttpClientName:
    """The client that can serve here: the lean one speaks to Mistral directly, so with a
    proxy named (HTTP(S)_PROXY, ALL_PROXY) it is httpx2, which honours them."""
    return "httpx2" if http == "lean" and _proxied() else http


def _http_client(settings: Settings, connections: int | None, http: HttpClientName) -> Any:
    import httpx2

    # One connection per request thread, and per batch item worker (shared.batch).
    threads = connections or max(int(os.environ.get("THREADS", "16")), settings.batch_concurrency)
    timeout = httpx2.Timeout(
        settings.mistral_timeout_ms / 1000, connect=settings.mistral_connect_timeout_ms / 1000
    )
    if http == "lean":
        from shared.mistral._http import LeanHttpClient

        return LeanHttpClient(timeout=timeout, max_idle=threads + 8)
    return httpx2.Client(
        follow_redirects=True,
        timeout=timeout,
        limits=httpx2.Limits(max_connections=threads + 8, max_keepalive_connections=threads + 8),
    )


# Request threads per SDK instance (one HTTP connection pool each) on httpx2; see SdkTransport.
THREADS_PER_POOL = 16


def build_client(
    settings: Settings, breaker: Breaker | None, *, http: HttpClientName = HTTP_CLIENT
) -> MistralClient:
    # Request threads, and the batch function's item workers, each need a connection.
    threads = max(int(os.environ.get("THREADS", "16")), settings.batch_concurrency, 1)
    http = _usable(http)
    if http == "lean":
        # The lean client's idle connections are a lock-free deque: one SDK serves every
        # thread (httpx2's pool is what needed splitting), and none is built mid-traffic.
        transport = SdkTransport(build_sdk(settings, threads, http=http))
    else:
        per_pool = min(threads, THREADS_PER_POOL)
        transport = SdkTransport(
            build_sdk(settings, per_pool, http=http),
            more=lambda: build_sdk(settings, per_pool, http=http),
            per_pool=per_pool,
            pools=-(-threads // per_pool),
        )
    return MistralClient(
        transport,
        breaker,
        max_retries=settings.mistral_max_retries,
        retry_max_s=settings.mistral_retry_max_ms / 1000,
    )


def _proxied() -> bool:
    """Whether the environment names a proxy (the `*_proxy` variables httpx2 reads)."""
    import urllib.request

    return any(urllib.request.getproxies_environment().get(s) for s in ("http", "https", "all"))

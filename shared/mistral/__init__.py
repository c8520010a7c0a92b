"""The one place that talks to Mistral: the official SDK's client and plumbing,
with retries, a shared circuit breaker and error translation.

    client = build_client(settings, breaker)
    answer = client.call("conversations.get", "GET", "/v1/conversations/conv_1")
    stream = client.stream("conversations.start", "/v1/conversations", body)
"""

from __future__ import annotations

from typing import Any

from shared.breaker import Breaker
from shared.config import HttpClientName, Settings
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


# The HTTP clients under the SDK (Settings.mistral_http_client): "lean" is
# shared.mistral._http on the standard library's sockets, "urllib3" shared.mistral._urllib3,
# "httpx2" the SDK's own. Their CPU per call: bench/RESULTS.md (python -m bench.http_cpu).
HTTP_CLIENT: HttpClientName = "lean"
HTTP_CLIENTS: tuple[HttpClientName, ...] = ("httpx2", "lean", "urllib3")


def build_sdk(
    settings: Settings, connections: int | None = None, *, http: HttpClientName | None = None
) -> Any:
    """The official SDK client, configured once per process (once per pool of threads).

    Its HTTP client keeps one connection per request thread it serves alive (THREADS
    by default), with a short connect timeout and the long read timeout conversations need.
    """
    from mistralai.client import Mistral

    return Mistral(
        api_key=settings.mistral_api_key,
        server_url=settings.mistral_server_url,
        client=_http_client(settings, connections, _usable(http or settings.mistral_http_client)),
    )


def _usable(http: HttpClientName) -> HttpClientName:
    """The client that can serve here: the lean and urllib3 ones speak to Mistral directly,
    so with a proxy named (HTTP(S)_PROXY, ALL_PROXY) it is httpx2, which honours them."""
    return "httpx2" if http != "httpx2" and _proxied() else http


def _http_client(settings: Settings, connections: int | None, http: HttpClientName) -> Any:
    import httpx2

    # One connection per request thread, and per batch item worker (shared.batch).
    threads = connections or settings.concurrency
    timeout = httpx2.Timeout(
        settings.mistral_timeout_ms / 1000, connect=settings.mistral_connect_timeout_ms / 1000
    )
    if http == "lean":
        from shared.mistral._http import LeanHttpClient

        return LeanHttpClient(timeout=timeout, max_idle=threads + 8)
    if http == "urllib3":
        from shared.mistral._urllib3 import Urllib3HttpClient

        return Urllib3HttpClient(timeout=timeout, max_idle=threads + 8)
    return httpx2.Client(
        follow_redirects=True,
        timeout=timeout,
        limits=httpx2.Limits(max_connections=threads + 8, max_keepalive_connections=threads + 8),
    )


# Request threads per SDK instance (one HTTP connection pool each) on httpx2; see SdkTransport.
THREADS_PER_POOL = 16


def build_client(
    settings: Settings, breaker: Breaker | None, *, http: HttpClientName | None = None
) -> MistralClient:
    # Request threads, and the batch function's item workers, each need a connection.
    threads = settings.concurrency
    http = _usable(http or settings.mistral_http_client)
    if http != "httpx2":
        # The lean client's idle connections are a lock-free deque, urllib3's a queue: one
        # SDK serves every thread (httpx2's pool is what needed splitting).
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

"""The one place that talks to Mistral: the official SDK's client and plumbing,
with retries, a shared circuit breaker and error translation.

    client = build_client(settings, breaker)
    answer = client.call("conversations.get", "GET", "/v1/conversations/conv_1")
    stream = client.stream("conversations.start", "/v1/conversations", body)
"""

from __future__ import annotations

from typing import Any

from shared.config import HttpClientName, Settings
from shared.limits.breaker import Breaker
from shared.mistral._client import (
    MistralClient,
    Retry,
    UpstreamResponse,
    UpstreamStream,
    retry_after_s,
)
from shared.mistral._transport import SDK_VERSION, SdkTransport, check_sdk

__all__ = [
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


# The HTTP clients under the SDK (Settings.mistral_http_client, "lean" by default):
# shared.mistral._http on the standard library's sockets, shared.mistral._urllib3, and
# httpx2, the SDK's own. Why lean: bench/RESULTS.md (python -m bench.http_cpu).
HTTP_CLIENTS: tuple[HttpClientName, ...] = ("httpx2", "lean", "urllib3")


def build_sdk(
    settings: Settings, connections: int | None = None, *, http: HttpClientName | None = None
) -> Any:
    """The official SDK client, configured once per process.

    Its HTTP client keeps one connection per request thread alive (`Settings.concurrency`
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
        follow_redirects=False,
        timeout=timeout,
        limits=httpx2.Limits(max_connections=threads + 8, max_keepalive_connections=threads + 8),
    )


def build_client(
    settings: Settings, breaker: Breaker | None, *, http: HttpClientName | None = None
) -> MistralClient:
    # One SDK, whose HTTP client keeps a connection for each request thread and batch worker.
    transport = SdkTransport(build_sdk(settings, settings.concurrency, http=http))
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

"""The one place that talks to Mistral: the official SDK's client and plumbing,
with retries, a shared circuit breaker and error translation.

    client = build_client(settings, breaker)
    answer = client.call("conversations.get", "GET", "/v1/conversations/conv_1")
    stream = client.stream("conversations.start", "/v1/conversations", body)
"""

from __future__ import annotations

import os
from typing import Any

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


def build_sdk(settings: Settings, connections: int | None = None) -> Any:
    """The official SDK client, configured once per process (once per pool of threads).

    Its HTTP client keeps one connection per request thread it serves alive (THREADS
    by default), with a short connect timeout and the long read timeout conversations need.
    """
    import httpx2
    from mistralai.client import Mistral

    # One connection per request thread, and per batch item worker (shared.batch).
    threads = connections or max(int(os.environ.get("THREADS", "16")), settings.batch_concurrency)
    http = httpx2.Client(
        follow_redirects=True,
        timeout=httpx2.Timeout(
            settings.mistral_timeout_ms / 1000,
            connect=settings.mistral_connect_timeout_ms / 1000,
        ),
        limits=httpx2.Limits(max_connections=threads + 8, max_keepalive_connections=threads + 8),
    )
    return Mistral(
        api_key=settings.mistral_api_key, server_url=settings.mistral_server_url, client=http
    )


# Request threads per SDK instance (one HTTP connection pool each); see SdkTransport.
THREADS_PER_POOL = 16


def build_client(settings: Settings, breaker: Breaker | None) -> MistralClient:
    # Request threads, and the batch function's item workers, each need a connection.
    threads = max(int(os.environ.get("THREADS", "16")), settings.batch_concurrency, 1)
    per_pool = min(threads, THREADS_PER_POOL)
    transport = SdkTransport(
        build_sdk(settings, per_pool),
        more=lambda: build_sdk(settings, per_pool),
        per_pool=per_pool,
        pools=-(-threads // per_pool),
    )
    return MistralClient(
        transport,
        breaker,
        max_retries=settings.mistral_max_retries,
        retry_max_s=settings.mistral_retry_max_ms / 1000,
    )

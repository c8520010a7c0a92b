"""What the SDK's HTTP clients here share: the SDK's `HttpClient` protocol's request building.

The SDK builds each request through its client's `build_request`, then hands it to
`send`; the clients in this package differ only in how they send.
"""

from __future__ import annotations

from typing import Any

import httpx2

__all__ = ["SdkHttpClient"]


class SdkHttpClient:
    """The request half of the SDK's `HttpClient` protocol, for clients that only send."""

    def build_request(
        self,
        method: str,
        url: httpx2.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        timeout: Any = httpx2.USE_CLIENT_DEFAULT,
        extensions: Any = None,
    ) -> httpx2.Request:
        extensions = dict(extensions or {})
        if timeout is not httpx2.USE_CLIENT_DEFAULT:
            extensions["timeout"] = httpx2.Timeout(timeout).as_dict()
        return httpx2.Request(
            method,
            url,
            # The SDK passes the query it parsed back out of the URL; merging it in again
            # would only cost a second parse of the URL.
            params=params or None,
            headers=headers,
            cookies=cookies,
            content=content,
            data=data,
            files=files,
            json=json,
            extensions=extensions,
        )

    def _refuse_unsupported(self, auth: Any, follow_redirects: Any) -> None:
        """Neither client authenticates on its own or follows redirects: say so, loudly."""
        name = type(self).__name__
        if auth is not None and auth is not httpx2.USE_CLIENT_DEFAULT:
            raise NotImplementedError(f"{name} sends no authentication of its own")
        if follow_redirects is True:
            raise NotImplementedError(f"{name} follows no redirects")

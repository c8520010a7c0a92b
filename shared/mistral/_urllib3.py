"""The SDK's HTTP client on urllib3.

The SDK takes any object with its `HttpClient` protocol (`send`, `build_request`, `close`:
`mistralai/client/httpclient.py`). Here urllib3 does the wire (its connection pool is
thread-safe and checks an idle connection for a close by the server before reusing it);
requests and responses stay httpx2's own `Request` and `Response`, so the SDK's hooks, its
error paths and `_client.py` see what they see with httpx2.

- Failures are httpx2's exceptions, with httpx2's meaning: `ConnectError` and
  `ConnectTimeout` only when nothing was sent (the caller may send the request again);
  `ReadTimeout`, `ReadError` and `RemoteProtocolError` once something may have been.
  urllib3 retries nothing and follows no redirect here: the caller decides.
- Bodies are read as they arrive (an event stream is relayed chunk by chunk).
- No proxies: `build_sdk` keeps httpx2 when the environment names one.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from typing import Any, cast

import httpx2
import urllib3
from urllib3 import exceptions as u3

from shared.mistral._sdk_client import SdkHttpClient

__all__ = ["Urllib3HttpClient"]

_RECV = 64 * 1024


def _translate(exc: Exception, request: httpx2.Request) -> httpx2.TransportError:
    """urllib3's failure as the httpx2 exception with the same meaning."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, u3.NewConnectionError):  # before its base, ConnectTimeoutError
        return httpx2.ConnectError(message, request=request)
    if isinstance(exc, u3.ConnectTimeoutError):
        return httpx2.ConnectTimeout(message, request=request)
    if isinstance(exc, u3.SSLError):  # the handshake: nothing of the request was sent
        return httpx2.ConnectError(message, request=request)
    if isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        return httpx2.ReadTimeout(message, request=request)
    if isinstance(exc, u3.ProtocolError | u3.DecodeError):
        return httpx2.RemoteProtocolError(message, request=request)
    return httpx2.ReadError(message, request=request)


class _Body(httpx2.SyncByteStream):
    """The answer's body as it arrives; the connection goes back to urllib3's pool once the
    body was read to its end, and is closed if the body is abandoned."""

    def __init__(self, response: urllib3.BaseHTTPResponse, request: httpx2.Request) -> None:
        self._response: urllib3.BaseHTTPResponse | None = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        if response is None:
            return
        try:
            if response.chunked:
                yield from response.read_chunked(decode_content=False)
            else:
                while data := response.read1(_RECV, decode_content=False):
                    yield data
        except (u3.HTTPError, OSError) as exc:
            raise _translate(exc, self._request) from exc

    def close(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        if not response.closed:  # abandoned mid-body: the connection cannot serve again
            response.close()
        response.release_conn()


class Urllib3HttpClient(SdkHttpClient):
    """The SDK's `HttpClient` on a urllib3 pool; see the module's docstring.

    `timeout` is httpx2's `Timeout` (connect and read are used; urllib3 applies the read
    limit to writes too); `max_idle` caps the connections kept per origin; `ssl_context`
    defaults to httpx2's own (the same trusted certificates, `SSL_CERT_FILE` and
    `SSL_CERT_DIR` included).
    """

    def __init__(
        self,
        *,
        timeout: httpx2.Timeout,
        max_idle: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        limits = timeout.as_dict()
        self._timeout = urllib3.Timeout(connect=limits["connect"], read=limits["read"])
        self._pools = urllib3.PoolManager(
            num_pools=4,
            maxsize=max_idle,
            block=False,
            retries=False,
            timeout=self._timeout,
            ssl_context=ssl_context or httpx2.create_ssl_context(),
        )

    def send(
        self,
        request: httpx2.Request,
        *,
        stream: bool = False,
        auth: Any = httpx2.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx2.USE_CLIENT_DEFAULT,
    ) -> httpx2.Response:
        self._refuse_unsupported(auth, follow_redirects)
        body: Any
        chunked = False
        if not hasattr(request, "_content"):
            # An upload relayed as it arrives: its Content-Length if given, else chunked.
            body = iter(cast("Iterable[bytes]", request.stream))
            chunked = "content-length" not in request.headers
            headers = {
                name: value
                for name, value in request.headers.multi_items()
                if name != "transfer-encoding"
            }
        else:
            body = request.read()
            # The body is whole here: it goes with a Content-Length, never chunked.
            headers = {
                name: value
                for name, value in request.headers.multi_items()
                if name != "transfer-encoding"
            }
            headers["content-length"] = str(len(body))
        timeout = self._timeout
        custom = request.extensions.get("timeout")
        if custom:
            timeout = urllib3.Timeout(connect=custom.get("connect"), read=custom.get("read"))
        url = request.url
        try:
            # The origin's own pool, and the path alone: no second parse of the whole URL.
            pool = self._pools.connection_from_host(url.host, url.port, url.scheme)
            answer = pool.urlopen(
                request.method,
                url.raw_path.decode("ascii"),
                body=body,
                headers=headers,
                chunked=chunked,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                timeout=timeout,
                assert_same_host=False,
            )
        except (u3.HTTPError, OSError) as exc:
            raise _translate(exc, request) from exc
        response = httpx2.Response(
            answer.status,
            headers=list(answer.headers.iteritems()),
            stream=_Body(answer, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode(),
            },
        )
        if not stream:
            try:
                response.read()
            finally:
                response.close()
        return response

    def close(self) -> None:
        self._pools.clear()

"""The local router: the load balancer's job, done the same way on one machine.

It matches each request against the route table (`shared.http.routes`), exactly as
the Terraform URL map does, and forwards it to the function that owns it,
streaming the answer back unbuffered so server-sent events arrive as they are
sent. Requests no route owns get the gateway's 403 `not_exposed` (an SDK operation
the gateway does not serve), 405 or 404 error body (`shared.http.web.unrouted`),
which is what the load balancer's default function answers in the cloud.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from werkzeug.serving import WSGIRequestHandler

from shared.errors import BadRequest, GatewayError, PayloadTooLarge, error_response
from shared.http import routes
from shared.http.web import request_id, unrouted
from shared.observability import Redactor

__all__ = ["RedactingRequestHandler", "Router"]

# Hop-by-hop headers are the connection's own, never forwarded (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# Cloud Run refuses larger requests (HTTP/1): https://cloud.google.com/run/quotas
_MAX_REQUEST_BYTES = 32 * 1024 * 1024

# Reuse a backend connection only if it was used this recently.
_IDLE_S = 1.0

# The router's own server writes these; the function's copies would be duplicates.
_NOT_RELAYED = _HOP_BY_HOP | {"server", "date"}


class _BackendUnavailable(GatewayError):
    """The function did not answer (it crashed, or is restarting): the load balancer's 502."""

    status = 502
    code = "backend_unavailable"


class _Relayed:
    """A body of known length, read from the caller as the function reads it: never held
    whole (uploads of hundreds of megabytes pass through in 64 KiB pieces)."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        data: bytes = self._stream.read(min(wanted, 65536))
        self._left -= len(data)
        if not data:
            self._left = 0
        return data


def _read_body(environ: dict[str, Any], length: int, chunked: bool) -> bytes | _Relayed | None:
    """The request body: by its length relayed as it arrives, or when sent chunked read
    to its end (capped) and sent on with a Content-Length, as a load balancer may."""
    stream = environ["wsgi.input"]
    if not chunked:
        return _Relayed(stream, length) if length else None
    # The development server's own dechunking trusts the sizes it reads (a huge one
    # crashed the process): the framing is read here instead, from the raw connection.
    return _dechunk(getattr(stream, "_rfile", stream), _MAX_REQUEST_BYTES)


# A chunk size is at most 16 hex digits (64 bits): more is an overflow, not a size.
_MAX_SIZE_DIGITS = 16
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _dechunk(rfile: Any, limit: int) -> bytes:
    """A chunked body (RFC 9112 7.1): 400 for broken framing, 413 past `limit`."""
    malformed = BadRequest("the request body's chunked framing is malformed")
    body = bytearray()
    while True:
        line = rfile.readline(1024)
        size_text = line.split(b";", 1)[0].strip(b" \t\r\n")
        if not line.endswith(b"\n") or not size_text or not set(size_text) <= _HEX:
            raise malformed
        if len(size_text.lstrip(b"0")) > _MAX_SIZE_DIGITS:
            raise malformed
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > limit:
            raise PayloadTooLarge(f"requests are limited to {limit} bytes")
        data = rfile.read(size)
        if len(data) < size or rfile.read(2) != b"\r\n":
            raise malformed
        body += data
    # Trailer fields, if any, up to the empty line that ends the message.
    for _ in range(100):
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n", b""):
            return bytes(body)
    raise malformed


class RedactingRequestHandler(WSGIRequestHandler):
    """The development server's request lines (`make run`'s output), secrets scrubbed.

    Werkzeug logs each request line with its query string: a key put in a URL
    (`?key=mgw_...`) would be printed as sent. The functions' own log lines are
    redacted by `shared.observability`; this is the same redactor for the router's.
    """

    _redact = Redactor()

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's name)
        super().log(type, "%s", self._redact(message % args if args else message))


class Router:
    """A WSGI app forwarding each public route to its function's base URL."""

    def __init__(
        self,
        backends: dict[str, str],
        timeout_s: float = 600,
        max_request_bytes: int = _MAX_REQUEST_BYTES,
    ) -> None:
        self.backends = {f: urlsplit(url) for f, url in backends.items()}
        self.timeout_s = timeout_s
        # Cloud Run's limit for HTTP/1 requests; only HTTP/2 end to end lifts it.
        self.max_request_bytes = max_request_bytes
        self._local = threading.local()

    def _connection(self, function: str) -> http.client.HTTPConnection:
        conns: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(function)
        if conn is None:
            target = self.backends[function]
            conn = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=self.timeout_s
            )
            conns[function] = conn
        return conn

    def _drop(self, function: str) -> None:
        conn = self._local.__dict__.get("conns", {}).pop(function, None)
        if conn is not None:
            conn.close()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        # The router's own answers carry a request id, as every function's answer does.
        own_id = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        found = routes.match(method, path, tuple(r for r in routes.ROUTES if r.public))
        if found.route is None:
            mapped = error_response(unrouted(method, path, found.allowed), own_id)
            start_response(
                f"{mapped.status} {http.client.responses[mapped.status]}",
                [
                    ("Content-Type", mapped.content_type),
                    *mapped.headers.items(),
                    ("X-Request-Id", own_id),
                ],
            )
            return [mapped.body]
        function = found.route.function
        query = environ.get("QUERY_STRING")
        # The path as it came, percent-encoded again (the WSGI server decoded it): a decoded
        # control character would not fit in the request line to the function (a 502 where
        # the load balancer, which forwards the encoded path, gets the function's 404).
        target = quote(path, safe="/:@!$&'()*+,;=~") + (f"?{query}" if query else "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_request_bytes:
            # Answered here, as the platform answers: a request that cannot be framed, or
            # larger than Cloud Run takes, never reaches a function (nor this memory).
            refused: GatewayError = (
                BadRequest("the Content-Length header is not a length")
                if length < 0
                else PayloadTooLarge(f"requests are limited to {self.max_request_bytes} bytes")
            )
            mapped = error_response(refused, own_id)
            start_response(
                f"{mapped.status} {http.client.responses[mapped.status]}",
                [
                    ("Content-Type", mapped.content_type),
                    ("X-Request-Id", own_id),
                    ("Content-Length", str(len(mapped.body))),
                    ("Connection", "close"),
                ],
            )
            return [mapped.body]
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            body = _read_body(environ, length, chunked)
        except GatewayError as refused_body:
            mapped = error_response(refused_body)
            start_response(
                f"{mapped.status} {http.client.responses[mapped.status]}",
                [
                    ("Content-Type", mapped.content_type),
                    ("Content-Length", str(len(mapped.body))),
                    ("Connection", "close"),
                ],
            )
            return [mapped.body]
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in _HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        elif body is not None:
            headers["Content-Length"] = str(length)
        try:
            response = self._forward(function, method, target, body, headers)
        except (OSError, http.client.HTTPException):
            # Answered here, as the load balancer answers for a crashed instance: a
            # ConnectionError escaping to the WSGI server would be taken for the caller's
            # own connection dropping, and the caller would wait for an answer for ever.
            mapped = error_response(
                _BackendUnavailable(f"the {function} function did not answer"), own_id
            )
            start_response(
                "502 Bad Gateway",
                [
                    ("Content-Type", mapped.content_type),
                    *mapped.headers.items(),
                    ("X-Request-Id", own_id),
                ],
            )
            return [mapped.body]
        start_response(
            f"{response.status} {response.reason}",
            [(k, v) for k, v in response.getheaders() if k.lower() not in _NOT_RELAYED],
        )
        return self._relay(function, response, environ.get("werkzeug.socket"))

    def _forward(
        self,
        function: str,
        method: str,
        target: str,
        body: bytes | _Relayed | None,
        headers: dict[str, str],
    ) -> http.client.HTTPResponse:
        # gunicorn closes idle keep-alive connections after 2 s: don't send on one
        # that may be closing, and retry only methods that are safe to send twice.
        idle = self._local.__dict__.setdefault("idle_since", {})
        if time.monotonic() - idle.get(function, 0.0) > _IDLE_S:
            self._drop(function)
        # A relayed body is read once: it cannot be sent again.
        resend = method in ("GET", "HEAD", "PUT", "DELETE") and not isinstance(body, _Relayed)
        attempts = 2 if resend else 1
        for attempt in range(1, attempts + 1):
            conn = self._connection(function)
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn.getresponse()
            except (ConnectionError, http.client.HTTPException):
                self._drop(function)
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _relay(
        self, function: str, response: http.client.HTTPResponse, caller: socket.socket | None
    ) -> Iterator[bytes]:
        try:
            while True:
                try:
                    chunk = response.read1(65536)
                except (OSError, http.client.HTTPException):
                    # The function died mid-answer. Ending the iteration would end the
                    # caller's answer cleanly (a truncated stream that looks whole), so the
                    # caller's connection is cut instead, as a load balancer cuts it.
                    if caller is not None:
                        with contextlib.suppress(OSError):
                            caller.shutdown(socket.SHUT_RDWR)
                    self._drop(function)
                    return
                if not chunk:
                    return
                yield chunk
        finally:
            if response.will_close or not response.isclosed():
                self._drop(function)
            else:
                self._local.__dict__.setdefault("idle_since", {})[function] = time.monotonic()

"""A lean HTTP/1.1 client for the SDK, on the standard library's sockets.

The SDK takes any object with its `HttpClient` protocol (`send`, `build_request`, `close`:
`mistralai/client/httpclient.py`). httpx2 + httpcore2 + h11, `http.client` and urllib3 all
cost more CPU per upstream call (bench/RESULTS.md, note 4); most of it is generic machinery
this one origin, one protocol use does not need. Requests and responses stay httpx2's own
`Request` and `Response`, so the SDK's hooks, its error paths and `_client.py` see what
they saw before; only the wire is done here.

- Idle connections wait in one deque per origin, shared by all threads without a lock
  (a deque's `append` and `pop` are atomic). One is dropped, before anything is sent on
  it, when it has been idle longer than the keep-alive expiry or has become readable (the
  server closed it, or sent something unasked for).
- Failures are httpx2's exceptions, with httpx2's meaning: `ConnectError` and
  `ConnectTimeout` only when nothing was sent, so the caller may send the request again;
  `WriteError`, `WriteTimeout`, `ReadError`, `ReadTimeout` and `RemoteProtocolError` once
  something may have been. A kept-alive connection that fails before the first byte of an
  answer is retried once, on a new connection, for GET, HEAD and OPTIONS only: a request
  that may change something and may have reached the server is never sent twice here.
- Bodies are read as they arrive (an event stream is relayed chunk by chunk), framed by
  Content-Length, chunked encoding, or the end of the connection.
- Redirects are not followed: Mistral's API answers where it is asked, and a 3xx goes to
  the caller as any other answer. No proxies and no cookie jar: `build_sdk` keeps httpx2 when
  the environment names a proxy.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx2

from shared.mistral._sdk_client import SdkHttpClient

__all__ = ["KEEPALIVE_EXPIRY_S", "LeanHttpClient"]

# httpx2's default; a server's idle timeout shorter than this would show as a readable
# socket, which is checked as well.
KEEPALIVE_EXPIRY_S = 5.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Sent once more after a kept-alive connection failed before answering: safe methods only
# (RFC 9110 section 9.2.2 allows it for idempotent ones; DELETE is left to the caller).
_RESEND_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_HEAD = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_FIELDS = 256
_RECV = 64 * 1024
# One system call for head and body below this; two above it, to spare copying a large body.
_JOIN_BODY_BELOW = 64 * 1024

_HEAD_END = re.compile(rb"\n\r?\n")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(rb"[0-9]{1,18}")
# The size, any extensions (ignored), optional whitespace: what h11 accepts.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*", re.DOTALL)
# RFC 9110 section 5.5 field values and RFC 9112 section 4 reason phrases: visible
# characters, obs-text, and spaces or tabs inside; no other control character.
_FIELD_VALUE = re.compile(
    rb"(?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)
_REASON = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")
# The usual head in one match: a status line and plain field lines (no folding), each
# accepted exactly when `_parse_head`'s loop accepts it (a value stripped of spaces and
# tabs matches `_FIELD_VALUE` when it has no other control character); anything else
# takes that loop.
_PLAIN_HEAD = re.compile(
    rb"(HTTP/1\.[01]) ([0-9]{3}) (" + _REASON.pattern + rb")\r?"
    rb"((?:\n" + _TOKEN.pattern + rb":" + _REASON.pattern + rb"\r?)*)"
)

# Body framings.
_EMPTY, _LENGTH, _CHUNKED, _TO_CLOSE = range(4)

Origin = tuple[str, str, int]


class _NoAnswer(Exception):
    """The connection failed before any byte of an answer arrived; `error` says how."""

    def __init__(self, error: httpx2.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection:
    """One socket, what was read past the last answer, and when it was last used."""

    __slots__ = ("_poll", "buf", "idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.idle_since = 0.0
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def usable(self, now: float, expiry_s: float) -> bool:
        """Safe to send on: not idle too long, and nothing (not even an end) arrived unasked."""
        if now - self.idle_since > expiry_s or self.buf:
            return False
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket):
            if sock.pending():
                return False
            if self._poll.poll(0):
                return _only_tls_records(sock)
            return True
        return not self._poll.poll(0)

    def fill(self) -> bool:
        """Append what has arrived (waiting for it); False at the end of the stream."""
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.buf += data
        return True

    def line(self) -> bytes:
        """The next line of a chunked body (size line, CRLF, trailer), without its CRLF
        (a bare LF does not end one: within a body, as h11 reads it)."""
        buf = self.buf
        start = 0
        while (end := buf.find(b"\r\n", start)) < 0:
            if len(buf) > _MAX_LINE:
                raise httpx2.RemoteProtocolError("a line of the chunked body is too long")
            start = max(len(buf) - 1, 0)
            if not self.fill():
                raise _incomplete()
        line = bytes(buf[:end])
        del buf[: end + 2]
        return line

    def take(self, limit: int) -> bytes:
        """Up to `limit` bytes: what is buffered, or else what one read brings."""
        buf = self.buf
        if not buf and not self.fill():
            raise _incomplete()
        if len(buf) <= limit:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:limit])
            del buf[:limit]
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _only_tls_records(sock: ssl.SSLSocket) -> bool:
    """A readable idle TLS socket may hold only a record that carries no data (TLS 1.3
    session tickets); True if that is all, False on data or the end of the connection."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1)
    except ssl.SSLWantReadError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
    return False


def _set_timeout(sock: socket.socket, timeout: float | None) -> None:
    """`settimeout` only when the value changes: each call is a system call (ioctl), and
    a kept-alive connection's read and write limits are usually one value."""
    if sock.gettimeout() != timeout:
        sock.settimeout(timeout)


def _incomplete() -> httpx2.RemoteProtocolError:
    return httpx2.RemoteProtocolError(
        "peer closed connection without sending complete message body"
    )


class _Body(httpx2.SyncByteStream):
    """The answer's body as it arrives; on close, the connection goes back to the pool if
    the body was read to its end and the server keeps the connection open."""

    def __init__(
        self,
        client: LeanHttpClient,
        origin: Origin,
        conn: _Connection,
        framing: int,
        length: int,
        keep_alive: bool,
    ) -> None:
        self._client = client
        self._origin = origin
        self._conn: _Connection | None = conn
        self._framing = framing
        self._length = length
        self._keep_alive = keep_alive
        self._done = framing == _EMPTY

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None or self._done:
            return
        try:
            if self._framing == _LENGTH:
                yield from _by_length(conn, self._length)
            elif self._framing == _CHUNKED:
                yield from _chunked(conn)
            else:
                if conn.buf:
                    yield bytes(conn.buf)
                    conn.buf.clear()
                while data := conn.sock.recv(_RECV):
                    yield data
        except TimeoutError as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out reading the answer") from exc
        except OSError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc
        self._done = True

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep_alive and not conn.buf:
            self._client._release(self._origin, conn)
        else:
            conn.close()


def _by_length(conn: _Connection, length: int) -> Iterator[bytes]:
    remaining = length
    if conn.buf:
        data = conn.take(remaining)
        remaining -= len(data)
        yield data
    recv = conn.sock.recv
    while remaining:
        data = recv(min(remaining, _RECV))
        if not data:
            raise _incomplete()
        remaining -= len(data)
        yield data


def _chunked(conn: _Connection) -> Iterator[bytes]:
    while True:
        size_line = conn.line()
        if not (found := _CHUNK_SIZE.fullmatch(size_line)):
            raise httpx2.RemoteProtocolError(f"bad chunk size line {size_line[:20]!r}")
        size = int(found[1], 16)
        if size == 0:
            break
        while size:
            data = conn.take(size)
            size -= len(data)
            yield data
        if conn.line():
            raise httpx2.RemoteProtocolError("a chunk is longer than its size")
    for _ in range(_MAX_FIELDS):
        if not conn.line():  # trailers, ignored, end at an empty line
            return
    raise httpx2.RemoteProtocolError("too many trailer fields")


def _request_bytes(request: httpx2.Request) -> tuple[bytes, bytes | Iterator[bytes]]:
    """The request's head and body as they go on the wire."""
    url = request.url
    parts = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    has_host = chunked = False
    lines = 2  # the request line and the empty line ending the head
    for name, value in request.headers.raw:
        lower = name.lower()
        has_host = has_host or lower == b"host"
        chunked = chunked or lower == b"transfer-encoding"
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    if not has_host:
        parts += (b"Host: ", url.netloc, b"\r\n")
        lines += 1
    parts.append(b"\r\n")
    head = b"".join(parts)
    # A CR, LF or NUL inside a name, a value or the target would smuggle in another header
    # (or request): every line must be one that was joined here.
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\x00" in head:
        raise httpx2.LocalProtocolError("illegal character in the request head", request=request)
    if not hasattr(request, "_content"):
        # A body still to be read (an upload relayed as it arrives): sent as it is read,
        # chunked unless a Content-Length was given.
        return head, _streamed(request.stream, chunked)
    body = request.read()
    if chunked:  # a streamed body the SDK built (uploads): sent as one chunk
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    return head, body


def _streamed(stream: Any, chunked: bool) -> Iterator[bytes]:
    for data in stream:
        if data:
            yield (b"%x\r\n%s\r\n" % (len(data), data)) if chunked else data
    if chunked:
        yield b"0\r\n\r\n"


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    if head.count(b"\n") < _MAX_FIELDS and (plain := _PLAIN_HEAD.fullmatch(head)):
        fields = []
        for line in plain[4].split(b"\n")[1:]:
            name, _, value = line.partition(b":")
            fields.append((name, value.strip(b" \t\r")))  # a CR only ends a line here
        return int(plain[2]), plain[3], plain[1], fields
    lines = head.split(b"\n")
    first = lines[0][:-1] if lines[0].endswith(b"\r") else lines[0]
    version, _, rest = first.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if (
        version not in (b"HTTP/1.1", b"HTTP/1.0")
        or len(code) != 3
        or not code.isdigit()
        or not _REASON.fullmatch(reason)
    ):
        raise httpx2.RemoteProtocolError(f"bad status line {lines[0][:80]!r}")
    if len(lines) > _MAX_FIELDS:
        raise httpx2.RemoteProtocolError("too many header fields")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: part of the previous value
            if not headers:
                raise httpx2.RemoteProtocolError("a folded line before any header")
            name, value = headers[-1]
            value = (value + b" " + line.lstrip(b" \t")).strip(b" \t")
            if not _FIELD_VALUE.fullmatch(value):
                raise httpx2.RemoteProtocolError(f"bad folded header line {line[:80]!r}")
            headers[-1] = (name, value)
            continue
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if not colon or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise httpx2.RemoteProtocolError(f"bad header line {line[:80]!r}")
        headers.append((name, value))
    return int(code), reason, version, headers


def _framing(
    method: str, status: int, version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, int, bool]:
    """(framing, length, keep-alive) of an answer, as RFC 9112 section 6.3 sets them."""
    keep_alive = version == b"HTTP/1.1"
    lengths: set[bytes] = set()
    transfer: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif lower == b"transfer-encoding":
            transfer.append(value.strip().lower())
        elif lower == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens and version == b"HTTP/1.0":
                keep_alive = True
    # A malformed framing header is refused even where the answer has no body.
    size = -1
    if lengths:
        length = lengths.pop() if len(lengths) == 1 else b"conflicting"
        if not _DIGITS.fullmatch(length):
            raise httpx2.RemoteProtocolError(f"bad Content-Length {length[:20]!r}")
        size = int(length)
    if transfer and transfer != [b"chunked"]:
        raise httpx2.RemoteProtocolError(f"unsupported Transfer-Encoding {transfer!r}")
    if method == "HEAD" or status in (204, 304):
        return _EMPTY, 0, keep_alive
    if transfer:
        # Both framings at once may be an attempt at response splitting: no reuse.
        return _CHUNKED, 0, keep_alive and size < 0
    if size >= 0:
        return (_LENGTH if size else _EMPTY), size, keep_alive
    return _TO_CLOSE, 0, False


class LeanHttpClient(SdkHttpClient):
    """The SDK's `HttpClient` on plain sockets; see the module's docstring.

    `timeout` is httpx2's `Timeout` (connect, read and write are used); `max_idle` caps the
    idle connections kept per origin, each for at most `keepalive_expiry_s`; `ssl_context`
    defaults to httpx2's own (the same trusted certificates, `SSL_CERT_FILE` and
    `SSL_CERT_DIR` included).
    """

    def __init__(
        self,
        *,
        timeout: httpx2.Timeout,
        max_idle: int = 16,
        keepalive_expiry_s: float = KEEPALIVE_EXPIRY_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout.as_dict()
        self.max_idle = max_idle
        self.keepalive_expiry_s = keepalive_expiry_s
        self._ssl_context = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._closed = False

    # -- the HttpClient protocol ----------------------------------------------------------

    def send(
        self,
        request: httpx2.Request,
        *,
        stream: bool = False,
        auth: Any = httpx2.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx2.USE_CLIENT_DEFAULT,
    ) -> httpx2.Response:
        self._refuse_unsupported(auth, follow_redirects)
        response = self._send_once(request)
        if not stream:
            try:
                _read_whole(response)
            except BaseException:
                response.close()
                raise
        return response

    def close(self) -> None:
        self._closed = True
        for idle in list(self._idle.values()):
            while idle:
                try:
                    idle.pop().close()
                except IndexError:
                    break

    # -- one exchange ---------------------------------------------------------------------

    def _send_once(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx2.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'.", request=request
            )
        origin = (scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme])
        timeout = request.extensions.get("timeout") or self.timeout
        head, body = _request_bytes(request)
        conn = self._idle_connection(origin)
        if conn is not None:
            try:
                return self._exchange(origin, conn, request, head, body, timeout)
            except _NoAnswer as exc:
                # The server may have closed this kept-alive connection as the request left.
                if request.method not in _RESEND_SAFE:
                    raise exc.error from exc.__cause__
        conn = self._connect(origin, request, timeout)
        try:
            return self._exchange(origin, conn, request, head, body, timeout)
        except _NoAnswer as exc:
            raise exc.error from exc.__cause__

    def _exchange(
        self,
        origin: Origin,
        conn: _Connection,
        request: httpx2.Request,
        head: bytes,
        body: bytes | Iterator[bytes],
        timeout: dict[str, float | None],
    ) -> httpx2.Response:
        """Sends the request and reads the answer's head; the body is left to the response."""
        sock = conn.sock
        try:
            _set_timeout(sock, timeout.get("write"))
            unsent: httpx2.WriteError | None = None
            try:
                if not isinstance(body, bytes):
                    sock.sendall(head)
                    for data in body:
                        sock.sendall(data)
                elif len(body) < _JOIN_BODY_BELOW:
                    sock.sendall(head + body)
                else:
                    sock.sendall(head)
                    sock.sendall(body)
            except TimeoutError as exc:
                raise httpx2.WriteTimeout(str(exc) or "timed out", request=request) from exc
            except OSError as exc:
                # The server may have answered before closing (a 413 for too large a body),
                # as httpcore reads too; if it did not, this is the failure to report.
                unsent = httpx2.WriteError(str(exc) or type(exc).__name__, request=request)
                unsent.__cause__ = exc
            _set_timeout(sock, timeout.get("read"))
            try:
                while True:
                    status, reason, version, headers = self._read_head(conn, request)
                    if status >= 200:
                        break
                    if status == 101:
                        raise httpx2.RemoteProtocolError("unexpected 101", request=request)
            except (httpx2.TransportError, _NoAnswer) as exc:
                if unsent is not None:
                    raise _NoAnswer(unsent) from exc
                raise
            framing, length, keep_alive = _framing(request.method, status, version, headers)
        except BaseException:
            conn.close()
            raise
        response = httpx2.Response(
            status,
            headers=headers,
            stream=_Body(self, origin, conn, framing, length, keep_alive and unsent is None),
            request=request,
            extensions={"http_version": version, "reason_phrase": reason},
        )
        _settle_encodings(response, headers)
        return response

    def _read_head(
        self, conn: _Connection, request: httpx2.Request
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        buf = conn.buf
        start = 0
        try:
            while (found := _HEAD_END.search(buf, start)) is None:
                if len(buf) > _MAX_HEAD:
                    raise httpx2.RemoteProtocolError("answer head too large", request=request)
                start = max(len(buf) - 2, 0)
                received = len(buf)
                if not conn.fill():
                    ended = httpx2.RemoteProtocolError(
                        "Server disconnected without sending a response.", request=request
                    )
                    if received:
                        raise ended
                    raise _NoAnswer(ended)
        except TimeoutError as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except OSError as exc:
            error = httpx2.ReadError(str(exc) or type(exc).__name__, request=request)
            if buf:
                raise error from exc
            raise _NoAnswer(error) from exc
        head = bytes(buf[: found.start()])
        del buf[: found.end()]
        try:
            return _parse_head(head)
        except httpx2.RemoteProtocolError as exc:
            exc.request = request
            raise

    # -- the pool -------------------------------------------------------------------------

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while True:
            try:
                conn = idle.pop()  # the most recently used: the least likely to be closed
            except IndexError:
                return None
            if conn.usable(now, self.keepalive_expiry_s):
                return conn
            conn.close()

    def _release(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.get(origin)
        if idle is None:
            idle = self._idle.setdefault(origin, deque())
        if self._closed or len(idle) >= self.max_idle:
            conn.close()
            return
        now = conn.idle_since = time.monotonic()
        idle.append(conn)
        # Calls take the newest idle connection, so the oldest would linger past its expiry
        # (holding a socket the server closed): each release retires at most one of them.
        try:
            if now - idle[0].idle_since <= self.keepalive_expiry_s:
                return
            oldest = idle.popleft()  # another thread may have taken that one: judge this one
        except IndexError:
            return
        if now - oldest.idle_since > self.keepalive_expiry_s:
            oldest.close()
        else:
            idle.appendleft(oldest)

    def _connect(
        self, origin: Origin, request: httpx2.Request, timeout: dict[str, float | None]
    ) -> _Connection:
        """A new connection; raises ConnectError or ConnectTimeout, nothing having been sent."""
        scheme, host, port = origin
        connect_timeout = timeout.get("connect")
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._tls().wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            if sock is not None:
                sock.close()
            raise httpx2.ConnectTimeout(str(exc) or "timed out", request=request) from exc
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(sock)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = httpx2.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context


def _read_whole(response: httpx2.Response) -> None:
    """`response.read()`, without httpx2's decoder and chunker generators when the answer
    has no content coding (nothing to decode): the body's bytes joined as they arrive,
    then the state `read` leaves (content kept, stream consumed and closed). An answer
    with a coding, or another stream, is read by httpx2 itself."""
    body = response.stream
    if not isinstance(body, _Body) or "content-encoding" in response.headers:
        response.read()
        return
    try:
        content = b"".join(body)
    except httpx2.TransportError as exc:
        exc.request = response.request
        raise
    finally:
        body.close()
    response._content = content
    response._num_bytes_downloaded = len(content)
    response.is_stream_consumed = True
    response.is_closed = True


def _settle_encodings(response: httpx2.Response, headers: list[tuple[bytes, bytes]]) -> None:
    """Set the encodings httpx2 would find, without its searches (both are read on every
    call: the SDK logs `response.text` at debug level, its argument built either way).

    The headers' encoding is ascii when every byte of them is (httpx2 tries to decode
    each header as ascii, then utf-8); the body's is utf-8, httpx2's default, when the
    content type names no charset (httpx2 parses it with `email.message` to find out).
    A charset named is left to httpx2.
    """
    if all(name.isascii() and value.isascii() for name, value in headers):
        response.headers.encoding = "ascii"
    for name, value in headers:
        if name.lower() == b"content-type" and b"charset" in value.lower():
            return
    response.encoding = "utf-8"

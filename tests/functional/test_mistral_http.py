"""The HTTP clients under the SDK, over real loopback sockets: the lean one
(shared.mistral._http) and, where they must behave alike, the urllib3 one
(shared.mistral._urllib3); scripted servers for the wire's corner cases, the stand-in for
the SDK's own paths."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gzip
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mistralai.client import Mistral, errors

from devstack.standin import StandIn
from shared.config import Settings
from shared.errors import UpstreamUnavailable
from shared.mistral import Retry, SdkTransport, build_client, build_sdk
from shared.mistral._http import LeanHttpClient
from shared.mistral._urllib3 import Urllib3HttpClient

MODEL = "mistral-small-latest"
FAST = httpx2.Timeout(2.0, connect=1.0)


# -- a scripted server: each connection runs a handler in its own thread -------------------------


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Peer:
    """One accepted connection, as the server sees it."""

    def __init__(self, sock: socket.socket, index: int) -> None:
        self.sock = sock
        self.index = index
        self.reader = sock.makefile("rb")

    def request(self) -> Request | None:
        """The next request, or None if the client closed the connection."""
        line = self.reader.readline()
        if not line:
            return None
        method, path, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.reader.read(int(headers.get("content-length", "0")))
        return Request(method, path, headers, body)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, body: bytes = b"ok", status: str = "200 OK", extra: str = "") -> None:
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        self.send(head.encode() + body)

    def close(self) -> None:
        # shutdown() first: it wakes a handler thread blocked reading this connection.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Script:
    """A loopback server; `handler(peer)` serves each connection, in its own thread."""

    def __init__(self, handler: Callable[[Peer], None], tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.peers: list[Peer] = []
        self.requests: list[Request] = []
        self.release = threading.Event()  # handlers that park wait on it
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            peer = Peer(sock, len(self.peers))
            self.peers.append(peer)
            self.handler(peer)
        except (OSError, ValueError):
            pass

    def read(self, peer: Peer) -> Request | None:
        request = peer.request()
        if request is not None:
            self.requests.append(request)
        return request

    def close(self) -> None:
        self.release.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for peer in self.peers:
            peer.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Script]]:
    scripts: list[Script] = []

    def start(handler: Callable[[Peer], None], tls: ssl.SSLContext | None = None) -> Script:
        scripts.append(Script(handler, tls))
        return scripts[-1]

    yield start
    for script in scripts:
        script.close()


def keep_alive(script_of: Callable[[], Script]) -> Callable[[Peer], None]:
    """Answer every request on the connection with its path, keeping the connection open."""

    def handler(peer: Peer) -> None:
        while (request := script_of().read(peer)) is not None:
            peer.answer(request.path.encode())

    return handler


# The clients that must behave alike on these tests.
CLIENTS = ("lean", "urllib3")
Client = LeanHttpClient | Urllib3HttpClient


def lean(**options: object) -> LeanHttpClient:
    return LeanHttpClient(timeout=FAST, **options)  # type: ignore[arg-type]


def make(name: str, timeout: httpx2.Timeout = FAST, **options: object) -> Client:
    kind = LeanHttpClient if name == "lean" else Urllib3HttpClient
    return kind(timeout=timeout, **options)  # type: ignore[arg-type]


def get(client: Client, url: str, **kwargs: object) -> httpx2.Response:
    return client.send(client.build_request("GET", url), **kwargs)  # type: ignore[arg-type]


def post(client: Client, url: str, body: bytes = b"{}") -> httpx2.Response:
    request = client.build_request("POST", url, content=body)
    return client.send(request)


# -- connections ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENTS)
def test_a_kept_alive_connection_serves_the_next_request(
    serve: Callable[..., Script], name: str
) -> None:
    """Two calls in a row travel on one connection."""
    script = serve(keep_alive(lambda: script))
    client = make(name)

    assert get(client, script.url + "/one").content == b"/one"
    assert get(client, script.url + "/two").content == b"/two"
    assert len(script.peers) == 1
    assert len(script.requests) == 2


@pytest.mark.parametrize("name", CLIENTS)
def test_threads_sharing_the_client_never_share_a_connection(
    serve: Callable[..., Script],
    name: str,
) -> None:
    """Eight threads calling at once each get their own answers, on at most eight connections."""
    script = serve(keep_alive(lambda: script))
    client = make(name)
    mixed: list[tuple[str, bytes]] = []

    def work(thread: int) -> None:
        for call in range(50):
            path = f"/{thread}/{call}"
            if (content := get(client, script.url + path).content) != path.encode():
                mixed.append((path, content))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert mixed == []
    assert len(script.requests) == 400
    assert len(script.peers) <= 8


@pytest.mark.parametrize("name", CLIENTS)
def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[..., Script],
    name: str,
) -> None:
    """The server closed the idle connection: the next call opens a new one, and succeeds."""
    closed = threading.Event()

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.answer()
        if peer.index == 0:
            peer.close()
            closed.set()
        else:
            keep_alive(lambda: script)(peer)

    script = serve(handler)
    client = make(name)
    get(client, script.url + "/")
    assert closed.wait(5)

    assert post(client, script.url + "/").status_code == 200
    assert len(script.peers) == 2
    assert [r.method for r in script.requests] == ["GET", "POST"]


def test_a_connection_idle_past_its_expiry_is_not_reused(serve: Callable[..., Script]) -> None:
    """An idle connection older than the keep-alive expiry is closed, and a new one opened."""
    script = serve(keep_alive(lambda: script))
    client = lean(keepalive_expiry_s=0.05)
    get(client, script.url + "/")
    time.sleep(0.1)

    get(client, script.url + "/")
    assert len(script.peers) == 2


def _drop_the_second_request(script_of: Callable[[], Script]) -> Callable[[Peer], None]:
    """The first connection answers once, then reads the next request and closes unanswered,
    as a server whose idle timeout fires just as the request arrives."""

    def handler(peer: Peer) -> None:
        script = script_of()
        if peer.index == 0:
            script.read(peer)
            peer.answer()
            script.read(peer)
            peer.close()
        else:
            keep_alive(script_of)(peer)

    return handler


def test_a_get_lost_on_a_stale_connection_is_sent_again_once(
    serve: Callable[..., Script],
) -> None:
    """A GET that got no answer on a kept-alive connection is resent on a new one."""
    script = serve(_drop_the_second_request(lambda: script))
    client = lean()
    get(client, script.url + "/first")

    assert get(client, script.url + "/again").content == b"/again"
    assert [r.path for r in script.requests] == ["/first", "/again", "/again"]


def test_a_post_that_may_have_been_received_is_never_sent_again(
    serve: Callable[..., Script],
) -> None:
    """A POST that got no answer on a kept-alive connection fails; the server saw it once."""
    script = serve(_drop_the_second_request(lambda: script))
    client = lean()
    get(client, script.url + "/first")

    with pytest.raises(httpx2.RemoteProtocolError):
        post(client, script.url + "/v1/conversations")
    assert [r.method for r in script.requests] == ["GET", "POST"]
    assert len(script.peers) == 1


def test_a_start_broken_after_it_was_sent_is_not_retried_by_the_gateway(
    serve: Callable[..., Script],
) -> None:
    """Through MistralClient: a start whose connection broke unanswered is one upstream request,
    reported as Mistral being unavailable."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.close()

    script = serve(handler)
    settings = Settings(mistral_api_key="k", mistral_server_url=script.url, mistral_max_retries=2)
    mistral = build_client(settings, None, http="lean")

    with pytest.raises(UpstreamUnavailable):
        mistral.call("conversations.start", "POST", "/v1/conversations", b"{}", retry=Retry.UNSENT)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'{"entries": "none"}', b"{not json", b"[" * 5000], ids=str
)
def test_a_history_that_is_not_an_entries_list_is_mistral_unavailable(
    serve: Callable[..., Script], body: bytes
) -> None:
    """turns.read_history: a 200 whose body is not an object holding an entries list
    is UpstreamUnavailable (a turn then stores what it saw), never another exception."""
    from shared.conversations.turns import read_history

    script = serve(keep_alive_with(lambda: script, body))
    settings = Settings(mistral_api_key="k", mistral_server_url=script.url)
    with pytest.raises(UpstreamUnavailable):
        read_history(build_client(settings, None), "conv_1")
    assert script.requests[0].path == "/v1/conversations/conv_1/history"


def keep_alive_with(script_of: Callable[[], Script], body: bytes) -> Callable[[Peer], None]:
    """Answer every request on the connection with `body`, as JSON."""

    def handler(peer: Peer) -> None:
        while script_of().read(peer) is not None:
            peer.answer(body, extra="Content-Type: application/json\r\n")

    return handler


@pytest.mark.parametrize("name", CLIENTS)
def test_an_answer_with_connection_close_is_read_and_the_connection_not_reused(
    serve: Callable[..., Script],
    name: str,
) -> None:
    """`Connection: close` answers are read whole; the next call opens a new connection."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.answer(b"bye", extra="Connection: close\r\n")
        peer.close()

    script = serve(handler)
    client = make(name)

    assert get(client, script.url + "/").content == b"bye"
    assert get(client, script.url + "/").content == b"bye"
    assert len(script.peers) == 2


@pytest.mark.parametrize("name", CLIENTS)
def test_a_body_delimited_by_the_end_of_the_connection_is_read_whole(
    serve: Callable[..., Script],
    name: str,
) -> None:
    """An answer without a length runs to the connection's end."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        peer.close()

    script = serve(handler)
    assert get(make(name), script.url + "/").content == b"all of it"


@pytest.mark.parametrize("name", CLIENTS)
def test_a_coded_answer_is_decoded_as_httpx2_decodes_it(
    serve: Callable[..., Script], name: str
) -> None:
    """A gzip-coded body reads as its decoded bytes, its headers as they came."""
    coded = gzip.compress(b'{"object": "list"}')

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.send(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
            % (len(coded), coded)
        )

    script = serve(handler)
    answer = get(make(name), script.url + "/")
    assert answer.content == b'{"object": "list"}'
    assert answer.headers["content-encoding"] == "gzip"


# -- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENTS)
def test_a_refused_connection_is_a_connect_error(name: str) -> None:
    """Nothing listening: ConnectError, which means nothing was sent."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(httpx2.ConnectError):
        get(make(name), f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize("name", CLIENTS)
def test_a_server_that_does_not_answer_in_time_is_a_read_timeout(
    serve: Callable[..., Script],
    name: str,
) -> None:
    """The request was received, the answer never came: ReadTimeout after the read timeout."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        script.release.wait(10)

    script = serve(handler)
    client = make(name, httpx2.Timeout(0.2, connect=1.0))
    with pytest.raises(httpx2.ReadTimeout):
        get(client, script.url + "/")


def test_a_tls_handshake_that_stalls_is_a_connect_timeout(serve: Callable[..., Script]) -> None:
    """A server that accepts but never completes TLS: ConnectTimeout, nothing was sent."""
    script = serve(lambda peer: script.release.wait(10))
    client = LeanHttpClient(timeout=httpx2.Timeout(2.0, connect=0.2))
    with pytest.raises(httpx2.ConnectTimeout):
        get(client, f"https://localhost:{script.port}/")


@pytest.mark.parametrize("name", CLIENTS)
def test_a_body_cut_short_is_a_protocol_error(serve: Callable[..., Script], name: str) -> None:
    """Fewer bytes than Content-Length before the connection ends: RemoteProtocolError."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        peer.close()

    script = serve(handler)
    request_url = script.url + "/"
    with pytest.raises(httpx2.RemoteProtocolError) as raised:
        get(make(name), request_url)
    assert str(raised.value.request.url) == request_url


def test_conflicting_content_lengths_are_a_protocol_error(serve: Callable[..., Script]) -> None:
    """An answer with two different lengths is refused, not guessed at."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc")

    script = serve(handler)
    with pytest.raises(httpx2.RemoteProtocolError):
        get(lean(), script.url + "/")


def test_a_header_value_with_a_line_break_is_refused_before_sending(
    serve: Callable[..., Script],
) -> None:
    """A CR LF inside a header value would inject a header: refused, nothing sent."""
    script = serve(keep_alive(lambda: script))
    client = lean()
    request = client.build_request("GET", script.url + "/", headers={"X-Key": "a\r\nX-Evil: 1"})

    with pytest.raises(httpx2.LocalProtocolError):
        client.send(request)
    assert script.peers == []


# -- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENTS)
def test_a_chunked_stream_is_delivered_as_it_arrives(
    serve: Callable[..., Script], name: str
) -> None:
    """The first chunk reaches the caller while the server still holds back the rest."""
    first_seen = threading.Event()
    finished = threading.Event()

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent1\r\n")
        first_seen.wait(5)
        peer.send(b"6;ext=1\r\nevent2\r\n0\r\nTrailer: x\r\n\r\n")
        finished.set()

    script = serve(handler)
    response = get(make(name), script.url + "/", stream=True)
    chunks = response.iter_bytes()

    assert next(chunks) == b"event1"
    assert not finished.is_set()
    first_seen.set()
    assert b"".join(chunks) == b"event2"
    assert response.is_closed


@pytest.mark.parametrize("name", CLIENTS)
def test_large_bodies_travel_whole_both_ways(serve: Callable[..., Script], name: str) -> None:
    """A 3 MiB request body is echoed back whole, by length and then chunked."""
    body = bytes(range(256)) * (3 * 4096)

    def handler(peer: Peer) -> None:
        request = script.read(peer)
        assert request is not None
        peer.answer(request.body)
        script.read(peer)
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 100_000):
            part = body[start : start + 100_000]
            peer.send(b"%x\r\n%s\r\n" % (len(part), part))
        peer.send(b"0\r\n\r\n")

    script = serve(handler)
    client = make(name)

    assert post(client, script.url + "/echo", body).content == body
    assert get(client, script.url + "/chunked").content == body
    assert len(script.peers) == 1


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA and a certificate it signed for localhost: (the CA's file, a server
    context serving that certificate)."""
    root = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = root / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = root / "server.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain)
    return ca_file, server


@pytest.mark.parametrize("name", CLIENTS)
def test_https_with_a_trusted_certificate_keeps_its_connection(
    serve: Callable[..., Script], certificates: tuple[Path, ssl.SSLContext], name: str
) -> None:
    """HTTPS with verification on, the test CA trusted: two calls on one TLS connection."""
    ca_file, server_context = certificates
    script = serve(keep_alive(lambda: script), tls=server_context)
    client = make(name, ssl_context=ssl.create_default_context(cafile=str(ca_file)))

    assert get(client, script.url + "/a").content == b"/a"
    assert get(client, script.url + "/b").content == b"/b"
    assert len(script.peers) == 1


@pytest.mark.parametrize("name", CLIENTS)
def test_https_refuses_a_certificate_it_does_not_trust(
    serve: Callable[..., Script], certificates: tuple[Path, ssl.SSLContext], name: str
) -> None:
    """Verification is on by default: an unknown CA is a ConnectError before anything is sent."""
    script = serve(keep_alive(lambda: script), tls=certificates[1])

    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(make(name), script.url + "/")
    assert script.requests == []


# -- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENTS)
def test_a_redirect_is_answered_as_it_is_not_followed(
    serve: Callable[..., Script], name: str
) -> None:
    """A 307 reaches the caller as it came: no second request, to this host or another."""

    def handler(peer: Peer) -> None:
        while script.read(peer) is not None:
            peer.answer(b"", "307 Temporary Redirect", "Location: http://127.0.0.1:9/new\r\n")

    script = serve(handler)
    answer = post(make(name), script.url + "/old", b"payload")
    assert answer.status_code == 307
    assert answer.headers["location"] == "http://127.0.0.1:9/new"
    assert [r.path for r in script.requests] == ["/old"]


# -- the SDK through the lean client --------------------------------------------------------------


@pytest.fixture(params=CLIENTS)
def lean_sdk(standin: StandIn, request: pytest.FixtureRequest) -> Mistral:
    """The SDK on each HTTP client in turn."""
    settings = Settings(mistral_api_key="test", mistral_server_url=standin.url)
    sdk = build_sdk(settings, 2, http=request.param)
    assert isinstance(sdk.sdk_configuration.client, LeanHttpClient | Urllib3HttpClient)
    return sdk  # type: ignore[no-any-return]


def test_the_sdks_typed_start_works_through_the_lean_client(lean_sdk: Mistral) -> None:
    """`sdk.beta.conversations.start(...)`: the SDK's own request and model path, end to end."""
    response = lean_sdk.beta.conversations.start(model=MODEL, inputs="one two three")

    assert response.conversation_id.startswith("conv_")
    assert response.usage.prompt_tokens == 3


def test_the_sdks_typed_stream_works_through_the_lean_client(lean_sdk: Mistral) -> None:
    """`start_stream` reads server-sent events through the lean client's streamed body."""
    with lean_sdk.beta.conversations.start_stream(model=MODEL, inputs="hello") as events:
        types = [event.event for event in events]

    assert types[0] == "conversation.response.started"
    assert types[-1] == "conversation.response.done"


def test_the_sdks_error_path_reads_the_answer_through_the_lean_client(lean_sdk: Mistral) -> None:
    """An upstream 404 becomes the SDK's own error, carrying the status and the body."""
    with pytest.raises(errors.SDKError) as raised:
        lean_sdk.beta.conversations.get(conversation_id="conv_missing")

    assert raised.value.status_code == 404
    assert "conv_missing" in raised.value.body


def test_the_deprecation_hook_reads_the_answer_through_the_lean_client(
    serve: Callable[..., Script], caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's after-success hook parses the body when Mistral flags a deprecated model."""

    def handler(peer: Peer) -> None:
        script.read(peer)
        peer.answer(
            b'{"model": "old-model"}',
            extra="Content-Type: application/json\r\nx-model-deprecation-timestamp: 2030-01-01\r\n",
        )

    script = serve(handler)
    settings = Settings(mistral_api_key="k", mistral_server_url=script.url)
    transport = SdkTransport(build_sdk(settings, 1, http="lean"))

    with caplog.at_level(logging.WARNING):
        response = transport.send("conversations.start", "POST", "/v1/conversations", b"{}")

    assert response.json() == {"model": "old-model"}
    assert "old-model is deprecated" in caplog.text


def test_a_configured_proxy_keeps_httpx2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither lean nor urllib3 speaks to proxies: with one in the environment, httpx2 is used."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    settings = Settings(mistral_api_key="k", mistral_server_url="https://api.mistral.ai")

    for name in CLIENTS:
        client = build_sdk(settings, 1, http=name).sdk_configuration.client
        assert isinstance(client, httpx2.Client)

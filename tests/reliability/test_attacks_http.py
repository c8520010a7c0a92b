"""Attacks at the HTTP layer: header injection, huge headers, oversized and deeply
nested bodies, lying lengths and slow clients, sent raw to a function (gunicorn, as
Cloud Run runs it) and through the router (the load balancer's stand-in).

What must hold: never a 5xx from the gateway, never an injected response header,
never a hung or crashed worker. Limits that belong to gunicorn's gthread worker are
asserted as measured and explained in docs/RELIABILITY.md: a connection that sends
nothing holds a worker thread for up to 5 s before gunicorn parks it, and a client
trickling a body holds one thread until it finishes, so THREADS such clients at once
stall an instance (fewer do not).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx2
import psutil
import pytest

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant
from tests.support import error_code

MODEL = "mistral-small-latest"
SUITE = "attacks: HTTP"


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _raw(url: str, data: bytes, timeout_s: float = 10) -> tuple[int, bytes, bytes]:
    """Send raw bytes; (status, head, body) of the one answer read back."""
    with socket.create_connection(_address(url), timeout=timeout_s) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, head, body


def _get(tenant: Tenant, extra: bytes, path: bytes = b"/v1/conversations") -> bytes:
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + tenant.secret.encode() + b"\r\n" + extra + b"\r\n"
    )


def _post(tenant: Tenant, body: bytes, extra: bytes = b"", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        b"POST /v1/conversations HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + tenant.secret.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(size).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


@pytest.fixture(scope="module")
def fronts(fstack: FaultStack) -> dict[str, tuple[str, str]]:
    """The two fronts an attacker may reach, (for reads, for turns): the functions
    themselves, and the router."""
    return {
        "function": (fstack.info.functions["history"], fstack.info.functions["start"]),
        "router": (fstack.url, fstack.url),
    }


def _worker_pids(fstack: FaultStack, function: str) -> set[int]:
    proc = psutil.Process(fstack.local.processes[function].pid)
    return {proc.pid, *(c.pid for c in proc.children(recursive=True))}


HEADER_ATTACKS = {
    "CRLF-split X-Request-Id": b"X-Request-Id: abc\r\nX-Injected: yes\r\n",
    "bare CR in X-Request-Id": b"X-Request-Id: abc\rX-Injected: yes\r\n",
    "bare LF in X-Request-Id": b"X-Request-Id: abc\nX-Injected: yes\r\n",
    "obs-fold X-Request-Id": b"X-Request-Id: abc\r\n X-Injected: yes\r\n",
    "NUL in X-Request-Id": b"X-Request-Id: ab\x00c\r\n",
    "encoded CRLF in X-Request-Id": b"X-Request-Id: abc%0d%0aX-Injected:%20yes\r\n",
    "CRLF-split Idempotency-Key": b"Idempotency-Key: k1\r\nX-Injected: yes\r\n",
    "bare CR in Idempotency-Key": b"Idempotency-Key: k1\rX-Injected: yes\r\n",
    "Latin-1 Idempotency-Key": b"Idempotency-Key: k\xe9\xff\r\n",
    "8 KB X-Request-Id": b"X-Request-Id: " + b"a" * 8000 + b"\r\n",
    "100 KB header": b"X-Big: " + b"a" * 100_000 + b"\r\n",
    "300 headers": b"".join(b"X-H%d: 1\r\n" % i for i in range(300)),
}


@pytest.mark.parametrize("front", ["function", "router"])
def test_header_injection_and_huge_headers_are_refused_or_neutralised(
    fstack: FaultStack, tenant: Tenant, fronts: dict[str, tuple[str, str]], front: str
) -> None:
    """CR, LF, NUL, folds and huge headers are refused or neutralised: no 5xx, nothing injected."""
    pids = _worker_pids(fstack, "start") | _worker_pids(fstack, "history")
    reads, turns = fronts[front]
    statuses = []
    for name, extra in HEADER_ATTACKS.items():
        if "Idempotency" in name:
            body = json.dumps({"inputs": "x", "model": MODEL}).encode()
            status, head, _ = _raw(turns, _post(tenant, body, extra))
        else:
            status, head, _ = _raw(reads, _get(tenant, extra))
        statuses.append(status)
        assert 200 <= status < 500, (name, status)
        assert b"x-injected" not in head.lower(), name
        echoed = re.search(rb"(?i)\r\nx-request-id: *([^\r\n]*)", head)
        if echoed:
            assert re.fullmatch(rb"[A-Za-z0-9_-]{1,64}", echoed.group(1)), name
    figures.add("attack_inputs", len(statuses))
    figures.scenario(
        SUITE, f"header injection and huge headers ({front})", answers=status_counts(statuses)
    )
    assert _worker_pids(fstack, "start") | _worker_pids(fstack, "history") == pids


def test_huge_request_line_is_refused_or_served_without_harm(
    fstack: FaultStack, tenant: Tenant, fronts: dict[str, tuple[str, str]]
) -> None:
    """A 1 MB request line is a 414 at the router and served by gunicorn, without harm."""
    pids = _worker_pids(fstack, "history")
    path = b"/v1/conversations?x=" + b"a" * 1_000_000
    via_router, _, _ = _raw(fronts["router"][0], _get(tenant, b"", path))
    direct, _, _ = _raw(fstack.info.functions["history"], _get(tenant, b"", path))
    figures.add("attack_inputs", 2)
    figures.scenario(SUITE, "1 MB request line", answers=status_counts([via_router, direct]))
    assert via_router == 414
    assert direct == 200
    assert _worker_pids(fstack, "history") == pids


def test_oversized_and_lying_bodies_are_413_at_once(fstack: FaultStack, tenant: Tenant) -> None:
    """Oversized, chunked and lying bodies are answered 413 (or 401) within a second."""
    url = fstack.info.functions["start"]
    pids = _worker_pids(fstack, "start")
    worker = psutil.Process(max(pids))
    rss = worker.memory_info().rss
    big = b'{"inputs": "' + b"a" * 2_000_000 + b'", "model": "m"}'
    chunked = (
        b"POST /v1/conversations HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + tenant.secret.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            b"%x\r\n%s\r\n" % (65536, big[i : i + 65536]) for i in range(0, 1_966_080, 65536)
        )
        + b"0\r\n\r\n"
    )
    answers = []
    for name, request in (
        ("2 MB", _post(tenant, big)),
        ("2 MB chunked", chunked),
        ("1 TB claimed", _post(tenant, b"{}", length=10**12)),
        (
            "1 TB claimed, unauthenticated",
            _post(tenant, b"{}", length=10**12).replace(b"Bearer", b"Bearer x"),
        ),
    ):
        started = time.monotonic()
        status, _, body = _raw(url, request)
        seconds = time.monotonic() - started
        answers.append(status)
        assert status in (401, 413), name
        assert error_code(json.loads(body)) in ("payload_too_large", "unauthorized"), name
        assert seconds < 1.5, (name, seconds)
    figures.add("attack_inputs", len(answers))
    figures.scenario(SUITE, "oversized and lying bodies", answers=status_counts(answers))
    assert _worker_pids(fstack, "start") == pids
    assert worker.memory_info().rss - rss < 50_000_000


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    ("path", "role", "body"),
    [
        ("/v1/conversations", "user", _nested(10_000)),
        (
            "/v1/conversations",
            "user",
            '{"inputs": "x", "model": "m", "metadata": {"k": ' + _nested(5_000) + "}}",
        ),
        (
            "/v1/conversations",
            "user",
            '{"inputs": ' + _nested(950, '{"role": "user", "content": "x"}') + ', "model": "m"}',
        ),
        (
            "/v1/conversations",
            "user",
            '{"inputs": "x", "model": "m", "metadata": ' + '{"a": ' * 101 + "1" + "}" * 101 + "}",
        ),
        ("/v1/agents", "admin", '{"name": "deep", "model": "m", "tools": ' + _nested(10_000) + "}"),
        ("/gateway/v1/keys", "admin", '{"name": ' + _nested(10_000) + ', "role": "user"}'),
    ],
    ids=[
        "10k arrays",
        "5k in metadata",
        "950 in inputs",
        "101 objects",
        "10k in agent",
        "10k in key",
    ],
)
def test_deeply_nested_bodies_are_400_and_the_worker_lives(
    fstack: FaultStack, fronts: dict[str, tuple[str, str]], path: str, role: str, body: str
) -> None:
    """Bodies nested past 100 levels (up to 10,000) are a 400, and the worker lives on."""
    tenant = fstack.tenant("rel-http-deep", role)
    function = {"/v1/conversations": "start"}.get(path, "admin")
    pids = _worker_pids(fstack, function)
    calls = sum(fstack.standin.calls().values())
    answer = httpx2.post(
        fstack.url + path,
        content=body.encode(),
        headers={**tenant.headers, "Content-Type": "application/json"},
        timeout=15,
    )
    after = httpx2.get(fstack.url + "/v1/agents", headers=tenant.headers, timeout=15)
    figures.add("attack_inputs")
    assert answer.status_code == 400, answer.text[:200]
    assert error_code(answer.json()) == "invalid_json"
    assert "deeper than 100" in answer.json()["message"]
    assert after.status_code == 200
    assert _worker_pids(fstack, function) == pids
    assert sum(fstack.standin.calls().values()) == calls


def test_nesting_within_the_limit_is_served_stored_and_read_back(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """Metadata nested 90 levels deep is accepted, stored and read back unchanged."""
    metadata: dict[str, object] = {"leaf": True}
    for _ in range(89):
        metadata = {"a": metadata}
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "deep but fine", "model": MODEL, "metadata": metadata},
        headers=tenant.headers,
        timeout=15,
    )
    assert answer.status_code == 200
    assert "Gateway-Stored" not in answer.headers
    read = httpx2.get(
        f"{fstack.url}/v1/conversations/{answer.json()['conversation_id']}",
        headers=tenant.headers,
        timeout=15,
    )
    assert read.status_code == 200
    assert read.json()["metadata"] == metadata


@pytest.fixture
def tricklers(fstack: FaultStack, tenant: Tenant) -> Iterator[Callable[[int], None]]:
    """Starts clients that send a 1,000-byte body a byte every half second."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    head = (
        b"POST /v1/conversations HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + tenant.secret.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )

    def trickle() -> None:
        with socket.create_connection(_address(fstack.info.functions["start"])) as sock:
            sock.sendall(head)
            while not stop.wait(0.5):
                try:
                    sock.sendall(b" ")
                except OSError:
                    return

    def start(count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=trickle, daemon=True)
            thread.start()
            threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)


def _probe(fstack: FaultStack, tenant: Tenant, count: int = 4) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.monotonic()
        answer = httpx2.post(
            fstack.info.functions["start"] + "/v1/conversations",
            json={"inputs": "meanwhile", "model": MODEL},
            headers=tenant.headers,
            timeout=30,
        )
        assert answer.status_code == 200
        seconds.append(time.monotonic() - started)
    return seconds


def test_slow_clients_below_the_thread_count_do_not_block_others(
    fstack: FaultStack, tenant: Tenant, tricklers: Callable[[int], None]
) -> None:
    """Fewer body-tricklers than the function has threads do not slow other callers."""
    tricklers(fstack.threads // 2)
    time.sleep(1.0)
    seconds = _probe(fstack, tenant)
    figures.add("attack_inputs", fstack.threads // 2)
    figures.scenario(
        SUITE, f"{fstack.threads // 2} body tricklers", slowest_probe_s=round(max(seconds), 2)
    )
    assert max(seconds) < 3.0  # blocked, it would wait for the tricklers: 500 s


def test_idle_connections_delay_others_at_most_gunicorns_data_timeout(
    fstack: FaultStack, tenant: Tenant
) -> None:
    """Silent connections delay other callers by at most gunicorn's 5 s data timeout."""
    sockets = [
        socket.create_connection(_address(fstack.info.functions["start"]))
        for _ in range(fstack.threads + 2)
    ]
    try:
        time.sleep(0.2)
        seconds = _probe(fstack, tenant, count=2)
    finally:
        for sock in sockets:
            sock.close()
    figures.add("attack_inputs", len(sockets))
    figures.scenario(
        SUITE, f"{len(sockets)} silent connections", slowest_probe_s=round(max(seconds), 2)
    )
    assert max(seconds) < 5.0 + 1.5


@pytest.mark.parametrize(
    ("length", "status", "kind"),
    [
        (b".x?s>S)", 400, "bad_request"),
        (b"-5", 400, "bad_request"),
        (b"1000000000000", 413, "payload_too_large"),
    ],
)
def test_router_refuses_unframeable_and_oversized_requests(
    fstack: FaultStack, tenant: Tenant, length: bytes, status: int, kind: str
) -> None:
    """A Content-Length that is no length, or past Cloud Run's 32 MiB, is a 4xx at the router."""
    request = (
        b"GET /gateway/v1/batches HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + tenant.secret.encode() + b"\r\n"
        b"Content-Length: " + length + b"\r\n\r\n"
    )
    answer, _, body = _raw(fstack.url, request)
    figures.add("attack_inputs")
    assert answer == status
    assert error_code(json.loads(body)) == kind


def _chunked(tenant: Tenant, chunks: bytes, path: bytes = b"/v1/conversations") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + tenant.secret.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )


def _as_chunks(body: bytes, size: int = 65536) -> bytes:
    return (
        b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
            for i in range(0, len(body), size)
        )
        + b"0\r\n\r\n"
    )


@pytest.mark.parametrize("front", ["function", "router"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_10_mb_body_is_a_413_the_caller_reads(
    fstack: FaultStack,
    fronts: dict[str, tuple[str, str]],
    tenant: Tenant,
    front: str,
    framing: str,
) -> None:
    """10 MB sent whole, by length or chunked, to the function or through the router: the
    caller reads the function's 413 (the body is read and discarded), not a reset or 502."""
    big = b'{"inputs": "' + b"a" * 10_000_000 + b'", "model": "m"}'
    request = _post(tenant, big) if framing == "length" else _chunked(tenant, _as_chunks(big))
    status, _, body = _raw(fronts[front][1], request, timeout_s=30)
    figures.add("attack_inputs")
    figures.scenario(SUITE, f"10 MB body ({framing}, {front})", answers=status_counts([status]))
    assert status == 413
    assert error_code(json.loads(body)) == "payload_too_large"


@pytest.mark.parametrize(
    ("front", "chunks"),
    [
        ("router", b"fffffffffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ("router", b"-5\r\nabc\r\n0\r\n\r\n"),
        ("function", b"-5\r\nabc\r\n0\r\n\r\n"),
        ("router", b"zz\r\nabc\r\n0\r\n\r\n"),
        ("function", b"zz\r\nabc\r\n0\r\n\r\n"),
        ("router", b"3\r\nabcdef\r\n0\r\n\r\n"),
        ("function", b"3\r\nabcdef\r\n0\r\n\r\n"),
    ],
    ids=[
        "size overflow, router",
        "negative size, router",
        "negative size, function",
        "not hex, router",
        "not hex, function",
        "chunk longer than its size, router",
        "chunk longer than its size, function",
    ],
)
def test_malformed_chunked_framing_is_a_400(
    fstack: FaultStack,
    fronts: dict[str, tuple[str, str]],
    tenant: Tenant,
    front: str,
    chunks: bytes,
) -> None:
    """A chunked body whose framing is broken is a 400 in the gateway's shape, never a 5xx.
    (A chunk size past the limit sent straight to a function is read as a slow body: see
    docs/RELIABILITY.md, known limits.)"""
    status, _, body = _raw(fronts[front][1], _chunked(tenant, chunks))
    figures.add("attack_inputs")
    assert status == 400
    assert json.loads(body)["object"] == "error"


def test_the_router_relays_a_chunked_body(fstack: FaultStack, tenant: Tenant) -> None:
    """A start sent chunked through the router reaches the function whole and is served."""
    body = json.dumps({"inputs": "chunked hello", "model": MODEL}).encode()
    status, _, answer = _raw(fstack.url, _chunked(tenant, _as_chunks(body, size=7)))
    figures.add("attack_inputs")
    assert status == 200
    assert json.loads(answer)["object"] == "conversation.response"

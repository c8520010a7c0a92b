"""The lean HTTP client's response parser reads what h11 (httpx's parser) reads: generated
answers, valid and mangled, go through both over a socket pair (hypothesis)."""

from __future__ import annotations

import socket
from typing import Any

import h11
import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.mistral._http import LeanHttpClient, _Body, _Connection, _framing, _NoAnswer

_TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))
# Framing is decided by these; other names are free.
_FRAMING = {"content-length", "transfer-encoding", "connection"}

Parsed = tuple[int, list[tuple[bytes, bytes]], bytes] | None


def lean(raw: bytes, method: str) -> Parsed:
    """Status, headers (names lower-cased) and body as the lean client reads them; None if
    it refuses the answer."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(raw)
        theirs.close()
        ours.settimeout(2)
        client = LeanHttpClient(timeout=httpx2.Timeout(2.0))
        conn = _Connection(ours)
        request = httpx2.Request(method, "http://upstream/")
        try:
            status, _, version, headers = client._read_head(conn, request)
            framing, length, keep_alive = _framing(method, status, version, headers)
            body = _Body(client, ("http", "upstream", 80), conn, framing, length, keep_alive)
            content = b"".join(body)
        except (httpx2.RemoteProtocolError, _NoAnswer):
            return None
        return status, [(n.lower(), v) for n, v in headers], content
    finally:
        ours.close()


def reference(raw: bytes, method: str) -> Parsed:
    """The same as h11 reads it."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "upstream")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    status = 0
    headers: list[tuple[bytes, bytes]] = []
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                return None  # the lean client's caller skips these: not compared here
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = [(bytes(n), bytes(v)) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, body
            else:  # NEED_DATA after the end, or the connection closed mid-message
                return None
    except h11.RemoteProtocolError:
        return None


_names = st.text(_TOKEN, min_size=1, max_size=12).filter(lambda n: n.lower() not in _FRAMING)
_values = st.text(_VCHAR + " \t", max_size=30).map(lambda v: v.strip(" \t"))
_headers = st.lists(st.tuples(_names, _values), max_size=6)
_bodies = st.binary(max_size=300)


@st.composite
def answers(draw: Any) -> tuple[bytes, str]:
    """A well-formed answer: any status, headers, and one of the three framings."""
    method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    status = draw(st.integers(200, 599))
    reason = draw(st.text(_VCHAR + " ", max_size=20)).strip()
    fields = draw(_headers)
    body = draw(_bodies)
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if status in (204, 304) or method == "HEAD":
        body, framing = b"", draw(st.sampled_from(["length", "close"]))
    if version == "HTTP/1.0" and framing == "chunked":
        framing = "length"
    wire = b""
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
        wire = body
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
        sizes = draw(st.lists(st.integers(1, 64), max_size=8))
        at = 0
        for size in [*sizes, len(body)]:
            piece = body[at : at + size]
            if piece:
                wire += b"%x\r\n%s\r\n" % (len(piece), piece)
            at += len(piece)
        wire += b"0\r\n\r\n"
    else:
        fields.append(("Connection", "close"))
        wire = body
    if status in (204, 304) or method == "HEAD":
        wire = b""
    head = f"{version} {status} {reason}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    return head.encode() + b"\r\n" + wire, method


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_a_well_formed_answer_reads_the_same_as_h11(answer: tuple[bytes, str]) -> None:
    """Status, headers and body of any well-formed answer are h11's, byte for byte."""
    raw, method = answer
    expected = reference(raw, method)
    assert expected is not None, raw
    assert lean(raw, method) == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.data())
def test_a_mangled_answer_is_refused_or_read_as_h11_reads_it(
    answer: tuple[bytes, str], data: st.DataObject
) -> None:
    """A byte changed, inserted or dropped: where h11 refuses the answer the lean client does
    too, and where h11 reads it the lean client reads the same (or refuses it)."""
    raw, method = answer
    at = data.draw(st.integers(0, len(raw)))
    byte = bytes([data.draw(st.integers(0, 255))])
    how = data.draw(st.sampled_from(["replace", "insert", "drop"]))
    if how == "replace":
        raw = raw[:at] + byte + raw[at + 1 :]
    elif how == "insert":
        raw = raw[:at] + byte + raw[at:]
    else:
        raw = raw[:at] + raw[at + 1 :]
    ours, expected = lean(raw, method), reference(raw, method)
    if expected is None:
        assert ours is None, raw
    else:
        assert ours in (None, expected), raw

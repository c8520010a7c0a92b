"""The HTTP side: a threading HTTP/1.1 server, and a handler that routes, authenticates, plays
the chosen fault and writes answers (JSON with Content-Length, SSE with chunked encoding)."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._api import Call, handle
from ._control import CONTROL_PREFIX, State
from ._faults import NO_FAULT, TERMINAL, Fault, malformed, status_reply, with_unknown_entry
from ._routes import match
from ._wire import JSON, SSE, Reply, error_payload

_MAX_LINE = 65536


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handler threads parked in a long `timeout` fault.
    block_on_close = False
    # Benchmarks open hundreds of connections at once; the default backlog of 5 drops SYNs.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: State) -> None:
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping keep-alive connections is routine; other errors keep their traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wakes handler threads blocked on idle keep-alive connections, so none outlive stop."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mistral-standin"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Small answers and SSE frames must leave at once; Nagle with delayed ACKs adds ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: benchmarks send many thousands of requests."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        try:
            self._dispatch(self.server.state)
        except ConnectionError:
            # The client left mid-answer; there is nobody left to tell.
            self.close_connection = True

    def _dispatch(self, state: State) -> None:
        target = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            # The framing of the connection is lost, so it cannot be reused.
            self.close_connection = True
            self._send(Reply(400, error_payload("Unreadable request body", "invalid_body")))
            return
        if target.path.startswith(CONTROL_PREFIX):
            self._send(state.control(self.command, target.path, body))
            return
        route = match(self.command, target.path)
        if route is None:
            self._send(Reply(404, error_payload(f"No route {target.path!r}", "not_found")))
            return
        if route.operation is None:
            message = f"Method {self.command} not allowed on {target.path}"
            allow = {"Allow": ", ".join(route.allowed)}
            self._send(Reply(405, error_payload(message, "method_not_allowed"), headers=allow))
            return
        state.count(route.operation)
        if not state.authorized(self.headers.get("Authorization")):
            payload = error_payload("Unauthorized", "unauthorized", "authentication_error")
            self._send(Reply(401, payload))
            return
        try:
            fault = state.fault_for(route.operation, self.headers.get("x-standin-fault"))
        except ValueError as error:
            self._send(Reply(400, error_payload(str(error), "invalid_fault")))
            return
        self._play(
            state,
            fault or NO_FAULT,
            Call(
                operation=route.operation,
                params=route.params,
                query=parse_qs(target.query, keep_blank_values=True),
                body=body,
                commit=True,
                content_type=self.headers.get("Content-Type", ""),
            ),
        )

    def _play(self, state: State, fault: Fault, call: Call) -> None:
        """Runs `call` wrapped in `fault`: latency, then a failure before or after the work, or
        an answer bent by the fault."""
        latency = state.latency_ms if fault.latency_ms is None else fault.latency_ms
        if latency and state.stopping.wait(latency / 1000):
            self._drop()
            return
        if fault.action in TERMINAL and not fault.after:
            self._fail(state, fault)
            return
        # A cut answer reaches the client only in part, so Mistral is assumed not to keep it.
        reply = handle(state.store, replace(call, commit=fault.action != "cut"))
        if fault.action in TERMINAL:
            self._fail(state, fault)
            return
        if reply.status < 400 and fault.action == "malformed":
            reply = malformed(reply)
        elif reply.status < 400 and fault.action == "unknown_entry":
            reply = with_unknown_entry(reply)
        self._send(reply, cut=fault.cut if fault.action == "cut" else None)

    def _fail(self, state: State, fault: Fault) -> None:
        if fault.action == "status":
            self._send(status_reply(fault))
        elif fault.action == "reset":
            self._reset()
        else:
            state.stopping.wait(fault.timeout_ms / 1000)
            self._drop()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline(_MAX_LINE).split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE)
        # Skip any trailers up to the blank line that ends the request.
        while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        phrase = self.responses.get(status, ("Error",))[0]
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, reply: Reply, cut: int | None = None) -> None:
        """Writes `reply`; with `cut`, only the first `cut` events (or bytes) and then a drop."""
        if reply.events is not None:
            self._send_events(reply, cut)
            return
        if reply.raw is not None:
            body = reply.raw
        elif reply.payload is not None:
            body = json.dumps(reply.payload, separators=(",", ":")).encode()
        else:
            body = b""
        headers = {"Content-Type": JSON} if body else {}
        if reply.status != 204:  # a 204 must not carry Content-Length
            headers["Content-Length"] = str(len(body))
        # One write for head and body: fewer syscalls and no small-packet stalls.
        head = self._head(reply.status, {**headers, **reply.headers})
        if cut is None:
            self.wfile.write(head + body)
        else:
            self.wfile.write(head + body[:cut])
            self._drop()

    def _send_events(self, reply: Reply, cut: int | None) -> None:
        events = reply.events or []
        headers = {"Content-Type": SSE, "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"}
        self.wfile.write(self._head(reply.status, {**headers, **reply.headers}))
        for name, data in events if cut is None else events[:cut]:
            text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
            # Chat, fim and agents completions' events have no name: Mistral sends data only.
            frame = (f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode()
            # One chunk per frame, written at once: the client sees each event as it happens.
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        if cut is None:
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._drop()

    def _drop(self) -> None:
        """Ends the connection with a plain FIN, without (the rest of) an answer."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _reset(self) -> None:
        """Aborts the connection with a TCP RST: with SO_LINGER 0, close() resets."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        # The socket only really closes with its last file object, the buffered reader.
        self.rfile.close()

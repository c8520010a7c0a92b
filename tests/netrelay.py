"""A loopback TCP relay for deploy-shaped network tests: a TLS terminator, a late network.

`Relay(target_port, tls=context)` terminates TLS with `context` (the certificate a
test wants the client to see) and forwards plain bytes to the target, as a
TLS-only Memorystore instance looks to the gateway while the embedded Valkey
speaks no TLS. `Relay(target_port, held=True)` accepts connections but passes no
byte either way until `open()`, or until `opens_after_s` after the first
connection arrived: a cold instance whose Direct VPC egress does not connect
yet. Each connection is served by its own threads; `stop()` closes all.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

__all__ = ["Relay"]

_BUFFER = 65536


class Relay:
    def __init__(
        self,
        target_port: int,
        *,
        tls: ssl.SSLContext | None = None,
        held: bool = False,
        opens_after_s: float | None = None,
    ) -> None:
        self.target = ("127.0.0.1", target_port)
        self.tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._open = threading.Event()
        self.opens_after_s = opens_after_s
        if not held and opens_after_s is None:
            self._open.set()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        # Connections accepted, and TLS handshakes the relay's side completed.
        self.accepted = 0
        self.handshakes = 0

    def start(self) -> Relay:
        threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True).start()
        return self

    def open(self) -> None:
        """Let the held connections (and every later one) through."""
        self._open.set()

    def stop(self) -> None:
        self._closed.set()
        self._open.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        # Shut down, never close, from here: the serving threads close their own sockets
        # once both directions have stopped (see `_serve`).
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted == 1 and self.opens_after_s is not None:
                threading.Timer(self.opens_after_s, self.open).start()
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._open.wait()
        if self._closed.is_set():
            client.close()
            return
        try:
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
                self._track(client)
                self.handshakes += 1
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except (OSError, ssl.SSLError):
            # A client that refuses the certificate ends the handshake: nothing to relay.
            with contextlib.suppress(OSError):
                client.close()
            return
        self._track(upstream)
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        # Closed only once neither direction uses them: a TLS socket closed while another
        # thread still writes through it lets OpenSSL write its record to whatever
        # connection reuses the file descriptor (seen: TLS bytes before a request to the
        # stand-in, in a later test).
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy one direction; at its end, shut both sockets down so the other stops too."""
        try:
            while True:
                data = src.recv(_BUFFER)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

"""A loopback TCP relay between the gateway and the Mistral stand-in.

It forwards bytes both ways unchanged, so every fault the stand-in plays (a
reset, a timeout, a cut) reaches the gateway exactly as it was sent: a reset
from the stand-in is passed on as a reset, a clean close as a clean close. Its
one addition is `throttle`: answers trickle out in small pieces, which turns a
stream that would be over in a millisecond into one a test can interrupt
mid-way (a gateway process killed mid-stream).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import threading
import time

__all__ = ["TcpProxy"]

_BUFFER = 65536


def _abort(sock: socket.socket) -> None:
    """Make the coming close of `sock` a TCP RST, and wake the thread reading it.

    The reading thread closes the socket when it wakes: a close from another thread
    while a recv() is blocked on the socket would be deferred by the kernel, and the
    RST would never leave.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


class TcpProxy:
    """Listens on 127.0.0.1 and relays each connection to `target_port`."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._listener = socket.create_server((host, 0), backlog=1024)
        self.port = int(self._listener.getsockname()[1])
        # Answers leave in pieces of `piece_bytes`, `delay_s` apart, while throttled.
        self.delay_s = 0.0
        self.piece_bytes = 256
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()
        return self

    def throttle(self, delay_s: float, piece_bytes: int = 256) -> None:
        """Trickle answers out (`delay_s` 0 turns it off)."""
        self.piece_bytes = piece_bytes
        self.delay_s = delay_s

    def stop(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.update(socks)

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(socks)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _abort(client)
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(client, upstream)
            done = threading.Barrier(2, action=functools.partial(self._close, client, upstream))
            for src, dst, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, answers, done), daemon=True
                ).start()

    def _close(self, client: socket.socket, upstream: socket.socket) -> None:
        self._untrack(client, upstream)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()

    def _pump(
        self, src: socket.socket, dst: socket.socket, answers: bool, done: threading.Barrier
    ) -> None:
        try:
            while True:
                try:
                    data = src.recv(_BUFFER)
                except ConnectionResetError:
                    # The peer reset: reset the other side too, as a network would.
                    _abort(dst)
                    return
                except OSError:
                    data = b""
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                try:
                    self._send(dst, data, answers)
                except OSError:
                    _abort(src)
                    return
        finally:
            with contextlib.suppress(threading.BrokenBarrierError):
                done.wait(timeout=600)

    def _send(self, dst: socket.socket, data: bytes, answers: bool) -> None:
        if not answers or self.delay_s <= 0:
            dst.sendall(data)
            return
        for start in range(0, len(data), self.piece_bytes):
            dst.sendall(data[start : start + self.piece_bytes])
            time.sleep(self.delay_s)

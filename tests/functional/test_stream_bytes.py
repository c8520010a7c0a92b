"""A stream whose bytes arrive one at a time (every multi-byte character split across
chunks) is relayed byte for byte and stored with its characters whole."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.config import Settings
from shared.container import Container, set_container
from shared.conversations.sse import SseParser
from tests.support import bearer, client, make_key

MODEL = "mistral-small-latest"
PIECES = ["Un café", " ☕ au lait", ", 𝄞 naïve ", "crème brûlée"]
CONVERSATION = "conv_bytes_0001"


def _frames() -> bytes:
    stamp = "2026-01-01T00:00:00Z"
    events: list[dict[str, Any]] = [
        {
            "type": "conversation.response.started",
            "conversation_id": CONVERSATION,
            "created_at": stamp,
        },
        *(
            {
                "type": "message.output.delta",
                "id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "content": piece,
                "role": "assistant",
                "model": MODEL,
                "created_at": stamp,
            }
            for piece in PIECES
        ),
        {
            "type": "conversation.response.done",
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            "created_at": stamp,
        },
    ]
    # ensure_ascii=False: the characters travel as UTF-8, as Mistral sends them.
    return b"".join(
        f"event: {e['type']}\r\ndata: {json.dumps(e, ensure_ascii=False)}\r\n\r\n".encode()
        for e in events
    )


STREAM = _frames()


class _Upstream(BaseHTTPRequestHandler):
    """Mistral, streaming every byte in its own chunk; history reads are not found, so the
    gateway stores the turn as it read it from the stream."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # One chunk per byte, all written at once: the client hands each chunk on alone.
        self.wfile.write(b"".join(b"1\r\n%c\r\n" % byte for byte in STREAM) + b"0\r\n\r\n")

    def do_GET(self) -> None:
        body = b'{"object":"error","message":"not found","type":"not_found","code":404}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def gateway(container: Container, base_settings: Settings, upstream: str) -> Iterator[Container]:
    settings = dataclasses.replace(
        base_settings, mistral_server_url=upstream, breaker_failure_threshold=1000
    )
    local = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(local)
    yield local
    set_container(previous)


def test_a_stream_split_at_every_byte_is_relayed_and_stored_whole(gateway: Container) -> None:
    """The caller gets Mistral's bytes unchanged; the stored reply has every character."""
    key = make_key(gateway, "user", owner="tenant-bytes")
    answer = client("start").post(
        "/v1/conversations",
        json={"inputs": "bonjour", "model": MODEL, "stream": True},
        headers={**bearer(key), "Accept": "text/event-stream"},
    )
    assert answer.status_code == 200
    relayed = answer.get_data()
    assert relayed == STREAM
    parser = SseParser()
    events = [e.json() for e in [*parser.feed(relayed), *parser.close()]]
    assert [e.get("content") for e in events if "content" in e] == PIECES
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT type, status, body FROM conversation_entries"
            " WHERE conversation_id = :id ORDER BY seq",
            id=CONVERSATION,
        )
    assert [(r["type"], r["status"]) for r in rows] == [
        ("message.input", "complete"),
        ("message.output", "complete"),
    ]
    body = rows[1]["body"]
    stored = json.loads(body) if isinstance(body, str) else body
    assert stored["content"] == "".join(PIECES)

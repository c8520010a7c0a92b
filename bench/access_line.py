"""CPU of one access line: the line's own path against google-cloud-logging's, same run.

    .venv/bin/python -m bench.access_line [--lines 5000] [--rounds 7]

Writes a full start's access line (a Flask request as functions-framework hands it
over, its fields filled in, a traceparent, a registered secret) to a stream that
discards it, `--lines` times per round, the rounds alternating between the line's own
path (`shared.observability._handler.write_access`) and the library's (`logging`,
google-cloud-logging's `StructuredLogHandler`, what `write_access` replaces). Prints
each path's best round in microseconds of CPU (process time) per line, and their ratio.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace
from typing import Any

import flask

from shared.config import Settings
from shared.observability import (
    AccessFields,
    bind_http_request,
    clear_request,
    configure_logging,
    emit_access,
)
from shared.observability._state import STATE

HEADERS = {
    "User-Agent": "mistral-client-python/1.9",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "Authorization": "Bearer mgw_xxx",
    "Content-Type": "application/json",
    "X-Forwarded-For": "1.2.3.4, 5.6.7.8",
}


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _round(request: Any, lines: int) -> float:
    route = SimpleNamespace(template="/v1/conversations", function="start")
    contexts = [
        SimpleNamespace(
            request=request,
            route=route,
            access=AccessFields(
                owner="t_1",
                key_prefix="mgw_abcd1234",
                model="mistral-small-latest",
                conversation_id="conv_0123456789abcdef",
                tokens_in=12,
                tokens_out=34,
                upstream_latency_ms=12.3456,
                rate_limit="ok",
                circuit="closed",
            ),
            request_id="req_123",
            started=time.perf_counter(),
        )
        for _ in range(lines)
    ]
    began = time.process_time()
    for ctx in contexts:
        # A new request each time: werkzeug computes its URL again.
        request.__dict__.pop("url", None)
        emit_access(ctx, 200, response_bytes=512)
    return (time.process_time() - began) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    configure_logging(Settings(gcp_project="proj", mistral_api_key="mistral-key-0123456789"))
    assert STATE.handler is not None
    STATE.handler.stream = _Discard()  # type: ignore[attr-defined]
    own = STATE.access_writer
    best = {"own": float("inf"), "library": float("inf")}
    app = flask.Flask(__name__)
    body = b'{"inputs": "hi", "model": "mistral-small-latest"}'
    with app.test_request_context("/v1/conversations", method="POST", headers=HEADERS, data=body):
        request = flask.request._get_current_object()  # type: ignore[attr-defined]
        bind_http_request(request, request_id="req_123", function="start")
        for n in range(args.rounds * 2):
            path = ("own", "library")[n % 2]
            STATE.access_writer = own if path == "own" else None
            best[path] = min(best[path], _round(request, args.lines))
        clear_request()
    STATE.access_writer = own
    print(f"library path: {best['library']:.1f} us CPU per line (best of {args.rounds})")
    print(f"own path:     {best['own']:.1f} us CPU per line (best of {args.rounds})")
    print(f"own/library:  {best['own'] / best['library']:.2f}")


if __name__ == "__main__":
    main()

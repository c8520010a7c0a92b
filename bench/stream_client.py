"""`python -m bench.stream_client`: many concurrent event streams, each checked event by event.

The load generator of the streaming scenario, run as its own process (aiohttp,
one event loop). Each of `--clients` clients waits a random part of
`--stagger-s` (so streams overlap instead of arriving in lockstep), then opens
streams one after another (at most one per `--cycle-s`) until `--duration-s`
has passed. For every stream it
records the time to the first complete event and the time to the end, and
checks the events against the reference reply (the same request answered
without streaming, straight from the stand-in): `conversation.response.started`
first, then exactly the reference's deltas in order, then
`conversation.response.done`. It prints one line: `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# The stand-in splits a reply into word-sized fragments, one delta each.
_FRAGMENT = re.compile(r"\s*\S+")


@dataclass
class Tally:
    ttfe_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    streams: int = 0
    complete: int = 0
    lost: int = 0  # streams with fewer events than expected
    reordered: int = 0  # streams whose events came in another order (or were altered)
    errors: dict[str, int] = field(default_factory=dict)
    # Streams that ended with the gateway's `: gateway-stored: false` comment: every event
    # arrived, but the turn could not be stored.
    unstored: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


# `--api chat`: the same checks on a metered pass-through chat stream (issue 19): its
# chunks' delta contents must be the reference's words, and `[DONE]` must end it.
_PATHS = {"conversations": "/v1/conversations", "chat": "/v1/chat/completions"}


def body_for(events: int, stream: bool, api: str = "conversations") -> dict[str, Any]:
    if api == "chat":
        return {
            "model": "mistral-small-latest",
            "messages": [{"role": "user", "content": "Stream me a long answer, word by word."}],
            "max_tokens": events,
            "stream": stream,
        }
    return {
        "model": "mistral-small-latest",
        "inputs": "Stream me a long answer, word by word.",
        "completion_args": {"max_tokens": events},
        "stream": stream,
        "store": True,
    }


async def reference(
    session: aiohttp.ClientSession, standin: str, events: int, api: str = "conversations"
) -> list[str]:
    """The deltas a correct stream carries, from the same request answered whole."""
    async with session.post(
        standin + _PATHS[api],
        json=body_for(events, stream=False, api=api),
        headers={"Authorization": "Bearer reference"},
    ) as answer:
        payload = await answer.json()
    if api == "chat":
        text = payload["choices"][0]["message"]["content"]
    else:
        text = payload["outputs"][0]["content"]
    pieces: list[str] = _FRAGMENT.findall(text)
    if len(pieces) != events:
        raise RuntimeError(f"reference reply has {len(pieces)} words, wanted {events}")
    return pieces


def _check(kinds: list[str], contents: list[str], expected: list[str], tally: Tally) -> None:
    if kinds and kinds[-1] == "[DONE]":
        # A chat stream: a role chunk, one chunk per word, a stop chunk, then [DONE].
        deltas = [c for c in contents[:-1] if c]
        whole, size = True, len(expected) + 3
    else:
        deltas = [c for k, c in zip(kinds, contents, strict=True) if k == "message.output.delta"]
        whole = (
            bool(kinds)
            and kinds[0] == "conversation.response.started"
            and kinds[-1] == "conversation.response.done"
        )
        size = len(expected) + 2
    if len(deltas) < len(expected) or not whole:
        tally.lost += 1
    elif deltas != expected or len(kinds) != size:
        tally.reordered += 1
    else:
        tally.complete += 1


async def one_stream(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    payload: bytes,
    expected: list[str],
    tally: Tally,
) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    kinds: list[str] = []
    contents: list[str] = []
    started = time.perf_counter()
    first: float | None = None
    unstored = False
    tally.streams += 1
    tally.in_flight += 1
    tally.max_in_flight = max(tally.max_in_flight, tally.in_flight)
    try:
        async with session.post(url, data=payload, headers=headers) as answer:
            if answer.status != 200:
                tally.error(f"status_{answer.status}")
                await answer.read()
                return
            buffer = b""
            async for chunk in answer.content.iter_any():
                buffer += chunk
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    lines = frame.split(b"\n")
                    data = b"".join(line[5:].strip() for line in lines if line.startswith(b"data:"))
                    if not data:
                        # A comment frame (as the SDK, skip it); the gateway's says "not stored".
                        unstored = unstored or any(b"gateway-stored: false" in x for x in lines)
                        continue
                    if first is None:
                        first = time.perf_counter()
                    if data == b"[DONE]":
                        kinds.append("[DONE]")
                        contents.append("")
                        continue
                    event = json.loads(data)
                    kinds.append(str(event.get("type")))
                    if "choices" in event:  # a chat chunk
                        delta = event["choices"][0].get("delta") or {}
                        contents.append(str(delta.get("content") or ""))
                    else:
                        contents.append(str(event.get("content", "")))
        end = time.perf_counter()
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        tally.error(type(exc).__name__)
        return
    finally:
        tally.in_flight -= 1
    if first is not None:
        tally.ttfe_ms.append((first - started) * 1000)
    tally.total_ms.append((end - started) * 1000)
    tally.unstored += unstored
    _check(kinds, contents, expected, tally)


async def client(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    payload: bytes,
    expected: list[str],
    tally: Tally,
    stagger_s: float,
    cycle_s: float,
    deadline: float,
    rng: random.Random,
) -> None:
    await asyncio.sleep(rng.uniform(0, stagger_s))
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        await one_stream(session, url, key, payload, expected, tally)
        # Paced: the next stream starts `cycle_s` after this one did (the floor is
        # sent at the gateway run's stream rate, not faster).
        await asyncio.sleep(max(0.0, cycle_s - (time.perf_counter() - began)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout_s)
    tally = Tally()
    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        expected = await reference(session, args.reference, args.events, args.api)
        payload = json.dumps(body_for(args.events, stream=True, api=args.api)).encode()
        url = args.url.rstrip("/") + _PATHS[args.api]
        started = time.perf_counter()
        deadline = started + args.duration_s
        await asyncio.gather(
            *(
                client(
                    session,
                    url,
                    args.key,
                    payload,
                    expected,
                    tally,
                    args.stagger_s,
                    args.cycle_s,
                    deadline,
                    rng,
                )
                for _ in range(args.clients)
            )
        )
        elapsed = time.perf_counter() - started
    return {
        "streams": tally.streams,
        "complete": tally.complete,
        "lost": tally.lost,
        "reordered": tally.reordered,
        "errors": tally.errors,
        "unstored": tally.unstored,
        "max_in_flight": tally.max_in_flight,
        "elapsed_s": round(elapsed, 3),
        "ttfe_ms": [round(x, 3) for x in tally.ttfe_ms],
        "total_ms": [round(x, 3) for x in tally.total_ms],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_client")
    parser.add_argument("--url", required=True, help="base URL: the gateway or the stand-in")
    parser.add_argument("--reference", required=True, help="the stand-in's base URL")
    parser.add_argument("--key", required=True)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--duration-s", type=float, default=5)
    parser.add_argument("--stagger-s", type=float, default=1)
    parser.add_argument(
        "--cycle-s", type=float, default=0, help="start a stream at most this often"
    )
    parser.add_argument("--timeout-s", type=float, default=60)
    parser.add_argument("--api", choices=sorted(_PATHS), default="conversations")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    sys.stdout.write("BENCH_JSON " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m bench.ratelimit_loop REDIS_URL`: `RateLimiter.check` alone, in a loop, one client.

A Python loop by nature: the figure is what one request thread of a function
gets from the limiter (one EVALSHA round trip to Valkey, plus redis-py), so
it runs the gateway's own limiter with the gateway's own Redis client
settings. Prints one line: `BENCH_JSON {"checks": N, "seconds": S, "rate": R,
"cpu_us": C}`, C this process's CPU (user + system) per check in microseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from shared.config import Settings
from shared.container import Container
from shared.limits.ratelimit import Limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit_loop")
    parser.add_argument("redis_url")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    container = Container(Settings(redis_url=args.redis_url))
    limiter = container.limiter
    limit = Limit(requests=1_000_000_000, window_s=60)
    for _ in range(200):  # warm: script loaded, connection open
        limiter.check("bench-warm", "bench-owner", limit)
    checks = 0
    refused = 0
    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            decision = limiter.check("bench-key", "bench-owner", limit)
            refused += decision.outcome != "allowed"
        checks += 100
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    result = {"checks": checks, "refused": refused, "seconds": round(seconds, 4)}
    result["rate"] = round(checks / seconds, 1)
    result["cpu_us"] = round(cpu / checks * 1e6, 1)
    sys.stdout.write("BENCH_JSON " + json.dumps(result) + "\n")
    container.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: one batch of 1,000 items through the batch function, served as Cloud Run serves it.

    python -m bench.batch_bench [--items 1000] [--concurrency 50] [--latency-ms 1000]
                                [--latency-on start|all]

Starts an embedded PostgreSQL and Valkey (or uses DATABASE_URL / REDIS_URL), the
Mistral stand-in, and `python -m functions_framework --target handle` for
functions/batch/main.py; publishes one push delivery and times it until the
function acknowledges. Prints the measured time next to the floor,
items / concurrency x latency (20 s for the defaults), and checks that every
item succeeded with exactly one upstream start.

`--latency-on start` (the default) makes the conversation start answer in
`--latency-ms`; `all` delays every stand-in answer, including the history
fetch the start path makes after each turn (`shared.conversations.turns`), which doubles
the time per item. Not a timed test: a benchmark, run by hand.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from devstack.servers import EmbeddedPostgres, EmbeddedValkey, free_port
from devstack.standin import StandIn
from shared.config import Settings
from shared.db import Pool, connector_for
from shared.db.schema import migrate
from shared.tenancy.keys import create_key

ROOT = Path(__file__).resolve().parents[1]
OWNER = "bench"


@contextmanager
def services(tmp: Path) -> Iterator[tuple[str, str]]:
    """(database URL, Redis URL): the environment's, or embedded servers started here."""
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    postgres = valkey = None
    try:
        if not database_url:
            postgres = EmbeddedPostgres(tmp / "pgdata", durable=False).start()
            database_url = postgres.create_database("bench")
        if not redis_url:
            valkey = EmbeddedValkey().start()
            redis_url = valkey.url
        yield database_url, redis_url
    finally:
        if valkey is not None:
            valkey.stop()
        if postgres is not None:
            postgres.stop()


def prepare(database_url: str) -> None:
    pool = Pool(connector_for(Settings(database_url=database_url)), size=1, timeout_s=5)
    try:
        migrate(pool)
        with pool.transaction() as conn:
            conn.run("DELETE FROM batches WHERE owner_id = :o", o=OWNER)
            conn.run("DELETE FROM conversations WHERE owner_id = :o", o=OWNER)
            create_key(conn, owner_id=OWNER, name="bench", role="user")
    finally:
        pool.close()


@contextmanager
def function(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target", "handle"]
            + ["--source", str(ROOT / "functions" / "batch" / "main.py")]
            + ["--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/gateway/v1/health/batch", timeout=2)  # noqa: S310
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the function did not start; see {log}") from None
                    time.sleep(0.1)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


def deliver(url: str, n: int) -> tuple[int, dict[str, object], float]:
    document = {
        "batch_id": f"bench-{int(time.time())}",
        "owner": OWNER,
        "items": [
            {"custom_id": f"row-{i}", "model": "mistral-small-latest", "inputs": f"question {i}"}
            for i in range(n)
        ],
    }
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(document).encode()).decode(),
            "messageId": str(time.time_ns()),
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": "projects/bench/subscriptions/batches-push",
    }
    request = urllib.request.Request(  # noqa: S310 - loopback
        url + "/gateway/v1/batches/events",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:  # noqa: S310
            status, answer = reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        status, answer = error.code, json.loads(error.read() or b"{}")
    return status, answer, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=1000)
    parser.add_argument("--latency-on", choices=("start", "all"), default="start")
    parser.add_argument("--target-s", type=float, default=22.0, help="the issue's bound")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    tmp.chmod(0o755)
    try:
        with services(tmp) as (database_url, redis_url), StandIn() as standin:
            prepare(database_url)
            if args.latency_on == "all":
                standin.latency_ms = args.latency_ms
            else:
                standin.inject(
                    f"latency={args.latency_ms}", count=args.items, operation="conversations.start"
                )
            env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
            env.update(
                ENVIRONMENT="test",
                LOG_LEVEL="WARNING",
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                MISTRAL_SERVER_URL=standin.url,
                MISTRAL_API_KEY="bench",
                MISTRAL_TIMEOUT_MS="30000",
                BATCH_CONCURRENCY=str(args.concurrency),
                # The batch principal's own request bucket: 1,000 starts in ~20 s.
                BATCH_RATE_LIMIT_REQUESTS="1000000",
                BATCH_RATE_LIMIT_WINDOW="60",
                # The SDK sizes its connection pool from THREADS (shared.mistral.build_sdk);
                # one connection per concurrent item, as Terraform must set it for batch.
                THREADS=str(args.concurrency),
                PYTHONPATH=str(ROOT),
            )
            with function(env, tmp / "function.log") as url:
                status, answer, elapsed = deliver(url, args.items)
            calls = standin.calls()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    per_item_s = args.latency_ms / 1000 * (2 if args.latency_on == "all" else 1)
    floor = args.items / args.concurrency * per_item_s
    counts = answer.get("counts") if isinstance(answer, dict) else None
    print(f"items {args.items}, concurrency {args.concurrency}, latency {args.latency_ms} ms")
    print(f"  on {args.latency_on}")
    print(f"answer: HTTP {status}, status {answer.get('status')}, counts {counts}")
    starts, histories = calls["conversations.start"], calls["conversations.history"]
    print(f"upstream starts: {starts}, history fetches: {histories}")
    overhead = f"{elapsed / floor - 1:+.1%}" if floor else "n/a"
    print(f"measured: {elapsed:.2f} s   floor: {floor:.2f} s   overhead: {overhead}")
    ok = (
        status == 200
        and isinstance(counts, dict)
        and counts.get("succeeded") == args.items
        and calls["conversations.start"] == args.items
    )
    if args.latency_on == "start":
        verdict = "met" if elapsed <= args.target_s else "MISSED"
        print(f"target: at most {args.target_s:.0f} s -> {verdict}")
        ok = ok and elapsed <= args.target_s
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench.usage_insert`: the usage event's insert alone, `Conn.run` against
`Conn.run_prepared`, in the same run.

`run` sends a statement through pg8000's `execute_unnamed` (three waits for the
server: parse; describe and bind; execute), `run_prepared` through pg8000's
`PreparedStatement` (one: bind, execute, sync). A fresh embedded PostgreSQL (fsync
off, as the bench stack's), one pooled connection, the pass-through's statement and
parameters; the two alternate round by round. Prints each side's median CPU (this
process, user + system) and wall time per statement, in microseconds.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from devstack.servers import EmbeddedPostgres
from shared.config import Settings
from shared.conversations import store
from shared.db import Pool, connector_for
from shared.db.schema import migrate

_EVENT = store.UsageEvent(
    owner="bench-owner",
    key_id="bench-key",
    operation="chat.complete",
    status=200,
    usage=store.Usage(12, 16),
    agent_id=None,
    model="mistral-small-latest",
    conversation_id=None,
)
_SQL = f"{store._USAGE_COLUMNS} VALUES ({store._USAGE_VALUES})"  # the pass-through's own


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _round(pool: Pool, method: str, n: int) -> tuple[float, float]:
    cpu, wall = _cpu(), time.perf_counter()
    for _ in range(n):
        with pool.connection() as conn:
            getattr(conn, method)(_SQL, **_EVENT.params())
    return 1e6 * (_cpu() - cpu) / n, 1e6 * (time.perf_counter() - wall) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usage_insert")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--statements", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", durable=False).start()
        try:
            pool = Pool(
                connector_for(Settings(database_url=server.create_database("bench"))),
                size=1,
                timeout_s=5,
            )
            migrate(pool)
            figures: dict[str, list[tuple[float, float]]] = {"run": [], "run_prepared": []}
            for i in range(args.rounds):
                order = ["run", "run_prepared"] if i % 2 == 0 else ["run_prepared", "run"]
                for method in order:
                    figures[method].append(_round(pool, method, args.statements))
            pool.close()
        finally:
            server.stop()
    for method, runs in figures.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"{method:13s} {cpu:6.1f} us CPU, {wall:6.1f} us wall per statement")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

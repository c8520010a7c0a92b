"""In-progress records: a change that waits on Mistral holds no connection and no lock.

A write that calls Mistral (an agent's create, update, version switch or delete, a
conversation's delete) records its intent first, in a short transaction: a row of
`writes_in_progress` under the key of what it changes, naming its holder (the
request) and a lease. It then calls Mistral outside any transaction, and finishes
in one short transaction that makes its change, writes its audit row and deletes
its record (`InProgress.finish`). A second write to the same key while the first
is in progress waits briefly, then is refused (409 with Retry-After); a holder
that died leaves a record whose lease runs out, and the next write takes it over.
This is the in-progress record of idempotency libraries, used as a lock that no
connection has to hold.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.db._pool import Conn, Pool
from shared.errors import GatewayError

__all__ = ["LEASE_S", "InProgress", "in_progress"]

# Longer than any one write's calls to Mistral (MISTRAL_TIMEOUT_MS is 120 s; a write
# makes at most a few calls, and repairs after an ambiguous failure): a record
# outlives its holder only when the holder died.
LEASE_S = 600
# How long a second write waits for the first before it is refused, and how often it
# looks: as long as the row locks these records replace waited (lock_timeout 500 ms).
_WAIT_S = 0.5
_POLL_S = 0.05

_CLAIM = (
    "INSERT INTO writes_in_progress (key, holder, operation, lease_until)"
    " VALUES (:key, :holder, :operation, now() + make_interval(secs => :lease))"
    " ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder,"
    " operation = EXCLUDED.operation, lease_until = EXCLUDED.lease_until, started_at = now()"
    " WHERE writes_in_progress.lease_until < now()"
    " RETURNING holder"
)
_RELEASE = "DELETE FROM writes_in_progress WHERE key = :key AND holder = :holder"


@dataclass
class InProgress:
    """A held in-progress record."""

    key: str
    holder: str
    done: bool = False

    def finish(self, conn: Conn) -> None:
        """Delete the record inside the transaction that makes the change."""
        conn.run(_RELEASE, key=self.key, holder=self.holder)
        self.done = True


@contextmanager
def in_progress(
    pool: Pool,
    key: str,
    operation: str,
    busy: Callable[[], GatewayError],
    *,
    request_id: str | None = None,
) -> Iterator[InProgress]:
    """Hold the in-progress record of `key` for the block; `busy()` is raised if another
    write holds it beyond a short wait. The block should `finish` it in its last
    transaction; a block that did not (it failed) has it deleted on the way out."""
    holder = f"{request_id or 'write'}/{secrets.token_hex(6)}"
    deadline = time.monotonic() + _WAIT_S
    while True:
        with pool.transaction() as conn:
            taken = conn.one(_CLAIM, key=key, holder=holder, operation=operation, lease=LEASE_S)
        if taken is not None:
            break
        if time.monotonic() >= deadline:
            raise busy()
        time.sleep(_POLL_S)
    record = InProgress(key, holder)
    try:
        yield record
    finally:
        if not record.done:
            _release(pool, record)


def _release(pool: Pool, record: InProgress) -> None:
    """Best effort: a record that cannot be deleted now (the database is away) runs out
    with its lease."""
    with contextlib.suppress(Exception), pool.transaction() as conn:
        record.finish(conn)

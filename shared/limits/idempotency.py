"""Idempotency keys: a retried request gets the first answer, never a second call.

The record is a small state machine in PostgreSQL, keyed by (owner, key):

    (none) --claim--> in_progress --complete--> completed --expire--> (none)
                          |
                          +--release (the call failed; a retry may run it)--> (none)

`claim` inserts the record in one statement; whoever inserts it runs the
request. Everyone else compares the request hash (a different body under the
same key is 422), then waits while the record is in progress and replays the
stored answer once it completes. It looks again after 50 ms, then twice as long
each time up to 1 s: a turn takes seconds, and a duplicate waiting out a whole
`lock_s` (130 s) reads the record about 135 times rather than 2,600. A record
whose holder died (its lock expired) is taken over by the next request, so a
crash never wedges a key.

Conversation turns drive the machine step by step (their streams complete it
as they end); a call answered whole (a resource create) runs through `once`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.db import Pool
from shared.errors import Conflict, GatewayError, ValidationFailed, field_error

__all__ = ["Claim", "Idempotency", "PartsHash", "StoredResponse", "request_hash"]

log = logging.getLogger(__name__)

_KEY_MAX = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: run the request (`replay` is None) or replay an answer."""

    replay: StoredResponse | None = None


def request_hash(operation: str, path: str, body: Any) -> bytes:
    """The request's fingerprint: its parsed body as canonical JSON (keys sorted, no spaces),
    so the same JSON written with its keys in another order or other spacing is the same
    request, as Mistral compares it."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    canonical_bytes = canonical.encode("utf-8", "surrogatepass")
    return hashlib.sha256(b"\0".join([operation.encode(), path.encode(), canonical_bytes])).digest()


def _mimetype(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _boundary(content_type: str) -> bytes:
    """The multipart boundary a Content-Type names (b"" if none)."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"').encode("latin-1", "replace")
    return b""


class PartsHash:
    """sha256 of a multipart body with its boundary replaced by a constant, fed chunk by
    chunk as the body streams (never held): the same parts sent under two boundaries (an
    HTTP client writes a new one per attempt) are the same request."""

    def __init__(self, content_type: str) -> None:
        boundary = _boundary(content_type)
        self._marker = b"--" + boundary if boundary else b""
        self._sha = hashlib.sha256(_mimetype(content_type).encode() + b"\0")
        # The end of the body so far that may be the start of a marker cut by a chunk.
        self._tail = b""

    def through(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.update(chunk)
            yield chunk

    def finish(self, chunks: Iterable[bytes]) -> None:
        """Read what is left of `chunks` (hashed as `through` passes it, held nowhere)."""
        for _ in chunks:
            pass

    def update(self, chunk: bytes) -> None:
        if not self._marker:
            self._sha.update(chunk)
            return
        pieces = (self._tail + chunk).split(self._marker)
        for piece in pieces[:-1]:
            self._sha.update(piece)
            self._sha.update(b"--<boundary>")
        last, keep = pieces[-1], len(self._marker) - 1
        self._sha.update(last[: len(last) - keep] if len(last) > keep else b"")
        self._tail = last[len(last) - keep :] if len(last) > keep else last

    def hexdigest(self) -> str:
        done = self._sha.copy()
        done.update(self._tail)
        return done.hexdigest()


class Idempotency:
    def __init__(
        self,
        pool: Callable[[], Pool],
        *,
        ttl_s: int,
        lock_s: float,
        poll_s: float = 0.05,
        max_poll_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        # How long the first request holds the key before another may take over.
        self._lock_s = lock_s
        self._poll_s = poll_s
        self._max_poll_s = max_poll_s
        self._sleep = sleep

    @staticmethod
    def validate_key(key: str) -> str:
        if not key or len(key) > _KEY_MAX or not key.isprintable():
            raise ValidationFailed(
                [
                    field_error(
                        ("header", "Idempotency-Key"),
                        f"must be 1 to {_KEY_MAX} printable characters",
                        "value_error",
                    )
                ]
            )
        return key

    def claim(self, owner: str, key: str, operation: str, digest: bytes) -> Claim:
        """Take the key, or wait for its holder and return the stored answer."""
        deadline = time.monotonic() + self._lock_s
        wait = self._poll_s
        while True:
            taken, row = self._try_claim(owner, key, operation, digest)
            if taken:
                return Claim()
            if row is None:
                continue  # released between our two statements: try again
            if bytes(row["request_hash"]) != digest:
                raise ValidationFailed(
                    [
                        field_error(
                            ("header", "Idempotency-Key"),
                            "this key was used with a different request",
                            "value_error",
                        )
                    ]
                )
            if row["status"] == "completed":
                headers = row["response_headers"] or {}
                return Claim(
                    StoredResponse(
                        int(row["response_status"]), dict(headers), bytes(row["response_body"])
                    ),
                )
            if time.monotonic() > deadline:
                raise Conflict(
                    "a request with this Idempotency-Key is still in progress",
                    code="idempotency_in_progress",
                )
            self._sleep(wait)
            wait = min(wait * 2, self._max_poll_s)

    def once(
        self,
        owner: str,
        key: str,
        operation: str,
        digest: bytes,
        run: Callable[[], StoredResponse],
    ) -> tuple[StoredResponse, bool]:
        """`run` at most once under `owner`'s `key`: its answer and False, or the answer
        an earlier request under the key got and True (after waiting for it while it
        runs). An exception from `run` frees the key, so a retry runs it again."""
        claim = self.claim(owner, self.validate_key(key), operation, digest)
        if claim.replay is not None:
            return claim.replay, True
        try:
            answer = run()
        except BaseException:
            try:
                self.release(owner, key)
            except GatewayError:
                log.warning("could not release idempotency key")
            raise
        try:
            self.complete(owner, key, answer)
        except Exception:  # any refusal: the answer Mistral gave still goes out
            log.warning("idempotency record of a finished call could not be completed")
        return answer, False

    def _try_claim(
        self, owner: str, key: str, operation: str, digest: bytes
    ) -> tuple[bool, dict[str, Any] | None]:
        """(True, None) if this caller now holds the key; else (False, the record)."""
        with self._pool().connection() as conn:
            # Insert, or take over a record that expired or whose holder's lock ran out.
            taken = conn.one(
                "INSERT INTO idempotency_records"
                " (owner_id, key, operation, request_hash, status, locked_until, expires_at)"
                " VALUES (:owner, :key, :op, :digest, 'in_progress',"
                " now() + make_interval(secs => :lock), now() + make_interval(secs => :ttl))"
                " ON CONFLICT (owner_id, key) DO UPDATE SET"
                "   operation = excluded.operation, request_hash = excluded.request_hash,"
                "   status = 'in_progress', locked_until = excluded.locked_until,"
                "   expires_at = excluded.expires_at, response_status = NULL,"
                "   response_headers = NULL, response_body = NULL, created_at = now()"
                " WHERE idempotency_records.expires_at < now()"
                "    OR (idempotency_records.status = 'in_progress'"
                "        AND idempotency_records.locked_until < now()"
                "        AND idempotency_records.request_hash = excluded.request_hash)"
                " RETURNING 1 AS taken",
                owner=owner,
                key=key,
                op=operation,
                digest=digest,
                lock=float(self._lock_s),
                ttl=float(self._ttl_s),
            )
            if taken is not None:
                return True, None
            return False, conn.one(
                "SELECT request_hash, status, response_status, response_headers, response_body"
                " FROM idempotency_records WHERE owner_id = :owner AND key = :key",
                owner=owner,
                key=key,
            )

    def complete(self, owner: str, key: str, response: StoredResponse) -> None:
        with self._pool().connection() as conn:
            conn.run(
                "UPDATE idempotency_records SET status = 'completed', locked_until = NULL,"
                " response_status = :status, response_headers = CAST(:headers AS jsonb),"
                " response_body = :body WHERE owner_id = :owner AND key = :key",
                status=response.status,
                headers=json.dumps(response.headers),
                body=response.body,
                owner=owner,
                key=key,
            )

    def release(self, owner: str, key: str) -> None:
        """The request failed before an answer worth keeping: let a retry run it."""
        with self._pool().connection() as conn:
            conn.run(
                "DELETE FROM idempotency_records"
                " WHERE owner_id = :owner AND key = :key AND status = 'in_progress'",
                owner=owner,
                key=key,
            )

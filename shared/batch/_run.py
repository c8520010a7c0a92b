"""One delivery's work on a batch's items: bounded concurrency, leases, outcomes.

Each item goes through the start function's own domain operation (`build_turn` and
`run_turn`: ownership, the owner's rate limit and token budget, the circuit
breaker, Mistral, storage) as the batch's principal. What happens next depends
on how it ended:

    Mistral answered, turn stored           succeeded (result: Mistral's answer)
    a client error (unknown agent, 422,     failed, alone; the others go on
      Mistral's own 4xx, input policy)
    rate limit or token budget (429)        wait Retry-After, try again (within the budget)
    5xx or timeout from Mistral             pending again, for a later delivery; failed
                                            after BATCH_ITEM_MAX_ATTEMPTS such claims
    circuit open, database or Redis down,   pending again, and the delivery stops
      Mistral refusing the gateway's key      claiming: it answers 503 (Pub/Sub retries)
    answered but not stored, or the         left running: its lease runs out and the next
      result could not be written             claim reconciles it (below)

A claim whose token is above 1 follows a claim that may have reached Mistral
(a crash, a timeout): before calling Mistral it looks for the conversation that
claim may have made, by the item's marker in the metadata, first in the
gateway's own tables and then at Mistral, and records it instead of starting
another one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shared import observability
from shared.batch import _store as store
from shared.batch._config import BatchSettings
from shared.batch._message import MARKER_KEY, BatchMessage, Item
from shared.calls import Call
from shared.container import Container
from shared.conversations import store as conversation_store
from shared.conversations.store import OUTPUT_TYPES, Usage
from shared.conversations.turns import TurnResult, build_turn, run_turn, store_from_history
from shared.db import Conn
from shared.errors import (
    CircuitOpen,
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamRejected,
)
from shared.mistral import Retry
from shared.observability import AccessFields
from shared.tenancy.keys import Principal

__all__ = ["BatchRun", "batch_principal"]

log = logging.getLogger(__name__)

_START = "conversations.start"
_START_PATH = "/v1/conversations"
# How often a delivery looks again at items another delivery is working on.
_POLL_S = 0.25
# Mistral refusing the gateway's own key is the operator's to fix, not the item's.
_GATEWAY_REFUSED = frozenset({401, 403})


def batch_principal(
    owner: str,
    settings: BatchSettings,
    tenant_budgets: tuple[int | None, int | None] = (None, None),
) -> Principal:
    """Who a batch's items run as: the owner's tenant, with its own request bucket.

    The batch's request rate is its own setting (not narrowed by the tenant's
    per-key rate); its token budgets are the tenant's (`tenant_budgets`: per minute
    and per day, None for the deployment's default), as any key's are.
    """
    requests = settings.batch_rate_limit_requests or None
    window = settings.batch_rate_limit_window or None
    return Principal(
        key_id=f"batch:{owner}",
        owner_id=owner,
        name="batch",
        role="user",
        prefix="batch",
        rate_limit_requests=requests,
        rate_limit_window=window,
        tenant_limits=(requests, window, *tenant_budgets),
    )


def _tenant_budgets(container: Container, owner: str) -> tuple[int | None, int | None]:
    with container.pool.connection() as conn:
        row = conn.one(
            "SELECT token_budget_per_minute AS m, token_budget_per_day AS d FROM tenants"
            " WHERE id = :id",
            id=owner,
        )
    return (row["m"], row["d"]) if row is not None else (None, None)


class _Outcome(Enum):
    DONE = "done"  # final, by this delivery or an earlier one
    BUSY = "busy"  # running elsewhere under a live lease
    NOT_STARTED = "not_started"  # this delivery stopped claiming
    RETRY_LATER = "retry_later"  # released as pending for a later delivery


class _Stop(Exception):
    """The whole delivery should stop: a transient failure that is not the item's."""

    def __init__(self, cause: GatewayError) -> None:
        super().__init__(cause.message)
        self.cause = cause


@dataclass
class _Claim:
    item: Item
    token: int
    started: float = field(default_factory=time.perf_counter)


class BatchRun:
    """Runs the unfinished items of one admitted batch for one delivery."""

    def __init__(
        self,
        container: Container,
        settings: BatchSettings,
        message: BatchMessage,
        *,
        request_id: str,
        allow_start: bool,
    ) -> None:
        self.container = container
        self.settings = settings
        self.message = message
        self.request_id = request_id
        # False once the message is past BATCH_MAX_AGE_S: reconcile, never start.
        self.allow_start = allow_start
        self.principal = batch_principal(
            message.owner, settings, _tenant_budgets(container, message.owner)
        )
        self.deadline = time.monotonic() + settings.batch_time_budget_s
        self.stop = threading.Event()
        # The first transient failure that stopped the delivery, for its 503.
        self.cause: GatewayError | None = None
        self._held: dict[int, int] = {}
        self._held_lock = threading.Lock()
        self._log_context = observability.current_request()

    # -- the delivery ----------------------------------------------------------------

    def run(self) -> None:
        """Work until every item is final, or the delivery must stop or is out of time."""
        with self.container.pool.connection() as conn:
            states = store.item_states(conn, self.message.batch_id)
        todo = [i for i in self.message.items if states[i.idx].status not in store.FINAL]
        if not todo:
            return
        workers = max(1, min(self.settings.batch_concurrency, len(todo)))
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="batch-item") as pool,
            self._renewing(),
        ):
            busy = self._round(pool, todo)
            # Items another delivery holds: wait until they end or their lease runs out.
            while busy and not self._stopping():
                time.sleep(_POLL_S)
                with self.container.pool.connection() as conn:
                    states = store.item_states(conn, self.message.batch_id, [i.idx for i in busy])
                claimable = [i for i in busy if not states[i.idx].live]
                busy = [i for i in busy if states[i.idx].live] + self._round(
                    pool, [i for i in claimable if states[i.idx].status not in store.FINAL]
                )

    def _round(self, pool: ThreadPoolExecutor, items: list[Item]) -> list[Item]:
        futures = {pool.submit(self._attempt, item): item for item in items}
        return [futures[f] for f in as_completed(futures) if f.result() is _Outcome.BUSY]

    def _stopping(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def _halt(self, cause: GatewayError) -> None:
        if self.cause is None:
            self.cause = cause
        self.stop.set()

    @contextlib.contextmanager
    def _renewing(self) -> Iterator[None]:
        """Renew this delivery's leases every third of a lease while its items run."""
        done = threading.Event()
        interval = max(self.settings.batch_lease_s / 3, 0.2)

        def renew() -> None:
            while not done.wait(interval):
                with self._held_lock:
                    held = dict(self._held)
                try:
                    with self.container.pool.connection() as conn:
                        store.renew(conn, self.message.batch_id, held, self.settings.batch_lease_s)
                except Exception as exc:  # the next round tries again; leases outlast two misses
                    log.warning("batch %s: lease renewal failed: %s", self.message.batch_id, exc)

        thread = threading.Thread(target=renew, name="batch-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    # -- one item ----------------------------------------------------------------------

    def _attempt(self, item: Item) -> _Outcome:
        """Claim the item and carry it to an outcome. Never raises."""
        parent = self._log_context
        observability.bind_request(
            request_id=f"{self.request_id}:{item.idx}",
            trace=parent.trace_id if parent else None,
            span=parent.span_id if parent else None,
            function="batch",
            sampled=parent.sampled if parent else False,
        )
        try:
            return self._attempt_bound(item)
        except _Stop as stop:
            self._halt(stop.cause)
            return _Outcome.RETRY_LATER
        except Exception as exc:  # a bug: logged; the item stays for a later delivery
            observability.log_exception(exc, f"batch item {item.idx} crashed")
            self._halt(ServiceUnavailable("a batch item failed unexpectedly"))
            return _Outcome.RETRY_LATER
        finally:
            observability.clear_request()

    def _attempt_bound(self, item: Item) -> _Outcome:
        if self._stopping():
            return _Outcome.NOT_STARTED
        batch_id = self.message.batch_id
        try:
            with self.container.pool.connection() as conn:
                token = store.claim(conn, batch_id, item.idx, self.settings.batch_lease_s)
                state = None if token is not None else store.item_states(conn, batch_id, [item.idx])
        except ServiceUnavailable as exc:
            raise _Stop(exc) from exc
        if token is None:
            assert state is not None
            return _Outcome.DONE if state[item.idx].status in store.FINAL else _Outcome.BUSY
        claim = _Claim(item, token)
        with self._held_lock:
            self._held[item.idx] = token
        try:
            return self._run_claimed(claim)
        finally:
            with self._held_lock:
                self._held.pop(item.idx, None)

    def _run_claimed(self, claim: _Claim) -> _Outcome:
        if claim.token > 1:
            try:
                if self._reconcile(claim):
                    return _Outcome.DONE
            except GatewayError as exc:
                return self._lookup_failed(claim, exc)
        if not self.allow_start:
            error = {
                "type": "invalid_request_error",
                "code": "expired",
                "message": "the message is older than BATCH_MAX_AGE_S; the item was not run",
            }
            self._write(claim, lambda conn: store.fail(conn, *self._key(claim), error), "failed")
            return _Outcome.DONE
        return self._start(claim)

    def _start(self, claim: _Claim) -> _Outcome:
        while True:
            ctx = self._call(claim.item)
            try:
                body = claim.item.start_body(self.message.batch_id)
                turn = build_turn(self.container.policy, _START, _START_PATH, body, None)
                result = run_turn(ctx, turn)
            except (RateLimited, UpstreamRejected) as exc:
                if isinstance(exc, RateLimited) or exc.status == 429:
                    # Nothing was created: wait as asked, then try again.
                    if self._wait(exc):
                        continue
                    self._release(claim, unsent=True)
                    return _Outcome.RETRY_LATER
                if exc.status in _GATEWAY_REFUSED:
                    self._release(claim, unsent=True)
                    raise _Stop(
                        ServiceUnavailable("Mistral refused the gateway's API key")
                    ) from exc
                return self._failed(claim, ctx, exc)
            except (CircuitOpen, ServiceUnavailable) as exc:
                # Raised before anything was sent (a start is retried only while unsent).
                self._release(claim, unsent=True)
                raise _Stop(exc) from exc
            except UpstreamError as exc:
                # 5xx or a timeout: the start may have reached Mistral.
                if claim.token >= self.settings.batch_item_max_attempts:
                    return self._failed(claim, ctx, exc)
                self._log_item(claim, ctx, "pending", error_type=exc.code)
                self._release(claim, unsent=False)
                return _Outcome.RETRY_LATER
            except GatewayError as exc:
                return self._failed(claim, ctx, exc)
            if not isinstance(result, TurnResult):  # items never stream (`_message`)
                raise TypeError("a batch item's turn streamed")
            return self._answered(claim, ctx, result)

    def _answered(self, claim: _Claim, ctx: Call, turn: TurnResult) -> _Outcome:
        result: dict[str, Any] = turn.answer or {}
        conversation_id = turn.conversation_id or ""
        if not turn.stored or not conversation_id:
            # Mistral made the conversation but the gateway could not store it: leave the
            # item running; the claim after its lease reconciles it from Mistral.
            raise _Stop(ServiceUnavailable("a batch item's conversation could not be stored"))
        self._write(
            claim,
            lambda conn: store.succeed(conn, *self._key(claim), conversation_id, result),
            "succeeded",
        )
        self._log_item(claim, ctx, "succeeded")
        return _Outcome.DONE

    def _failed(self, claim: _Claim, ctx: Call | None, exc: GatewayError) -> _Outcome:
        error = item_error(exc)
        self._write(claim, lambda conn: store.fail(conn, *self._key(claim), error), "failed")
        self._log_item(claim, ctx, "failed", error_type=error["type"])
        return _Outcome.DONE

    def _lookup_failed(self, claim: _Claim, exc: GatewayError) -> _Outcome:
        if isinstance(exc, CircuitOpen | ServiceUnavailable):
            self._release(claim, unsent=True)
            raise _Stop(exc)
        if claim.token > self.settings.batch_item_max_attempts:
            error = {
                "type": "api_error",
                "code": "reconcile_failed",
                "message": "an earlier attempt may have reached Mistral and Mistral could not"
                f" be asked about it ({exc.code}); the item was not run again",
                "marker": {MARKER_KEY: claim.item.marker(self.message.batch_id)},
            }
            self._write(claim, lambda conn: store.fail(conn, *self._key(claim), error), "failed")
            return _Outcome.DONE
        # Counted (not given back), so a lookup that keeps failing ends the item.
        self._release(claim, unsent=False)
        return _Outcome.RETRY_LATER

    # -- reconciling an item a previous claim may have started ------------------------

    def _reconcile(self, claim: _Claim) -> bool:
        """Record the conversation an earlier claim made, if there is one."""
        item, batch_id, owner = claim.item, self.message.batch_id, self.message.owner
        marker = {MARKER_KEY: item.marker(batch_id)}
        outputs: list[Any] = []
        usage: dict[str, int] | None = None
        with self.container.pool.connection() as conn:
            conversation_id = store.find_stored_conversation(conn, owner, marker)
            if conversation_id is not None:
                # Stored by the earlier claim, which then stopped before marking the item.
                outputs, usage = store.stored_outputs(conn, conversation_id)
        if conversation_id is None:
            conversation_id = self._find_upstream(marker)
            if conversation_id is None:
                return False
            outputs = self._store_upstream(item, conversation_id)
        found_id = conversation_id
        result = {
            "object": "conversation.response",
            "conversation_id": conversation_id,
            "outputs": outputs,
            "usage": usage,
            "gateway_reconciled": True,
        }
        self._write(
            claim,
            lambda conn: store.succeed(conn, *self._key(claim), found_id, result),
            "succeeded",
        )
        observability.log_event(
            "batch_item_reconciled",
            batch_id=batch_id,
            index=item.idx,
            conversation_id=conversation_id,
            attempts=claim.token,
        )
        return True

    def _find_upstream(self, marker: dict[str, str]) -> str | None:
        query = urllib.parse.urlencode(
            {"page": 0, "page_size": 1, "metadata": json.dumps(marker, separators=(",", ":"))}
        )
        answer = self.container.mistral.call(
            "conversations.list", "GET", f"{_START_PATH}?{query}", retry=Retry.IDEMPOTENT
        )
        try:
            found = answer.json()
        except ValueError:
            return None
        if isinstance(found, dict):  # a page object, should Mistral ever wrap the list
            found = found.get("data")
        if isinstance(found, list) and found and isinstance(found[0], dict) and found[0].get("id"):
            return str(found[0]["id"])
        return None

    def _store_upstream(self, item: Item, conversation_id: str) -> list[Any]:
        """Store a conversation found at Mistral as the start would have; its outputs."""
        body = item.start_body(self.message.batch_id)
        # The tokens the lost answer reported are not in the history: stored as zero.
        entries = store_from_history(
            self.container,
            conversation_id,
            conversation_store.UsageEvent(
                owner=self.message.owner,
                key_id=self.principal.key_id,
                operation=_START,
                status=200,
                usage=Usage(),
                agent_id=body.get("agent_id"),
                model=body.get("model"),
                conversation_id=conversation_id,
            ),
            new=body,
        )
        return [e for e in entries if e.get("type") in OUTPUT_TYPES]

    # -- helpers -------------------------------------------------------------------------

    def _call(self, item: Item) -> Call:
        return Call(
            container=self.container,
            request_id=f"{self.request_id}:{item.idx}",
            started=time.perf_counter(),
            principal=self.principal,
        )

    def _key(self, claim: _Claim) -> tuple[str, int, int]:
        return self.message.batch_id, claim.item.idx, claim.token

    def _wait(self, exc: GatewayError) -> bool:
        """Sleep the Retry-After the limit asked for, if the budget allows; False if not."""
        try:
            wait = float(exc.headers.get("Retry-After", "1"))
        except ValueError:
            wait = 1.0
        # A little jitter, so that the workers a limit stopped together do not return together.
        wait += random.uniform(0, 0.25)
        if self._stopping() or time.monotonic() + wait >= self.deadline:
            return False
        return not self.stop.wait(wait)

    def _write(self, claim: _Claim, write: Callable[[Conn], bool], outcome: str) -> None:
        """A final write under the claim's token. A lost lease writes nothing; a database
        that is down stops the delivery (the lease runs out and a later claim reconciles)."""
        try:
            with self.container.pool.connection() as conn:
                written = write(conn)
        except ServiceUnavailable as exc:
            raise _Stop(exc) from exc
        if not written:
            observability.log_event(
                "batch_item_lease_lost",
                "WARNING",
                batch_id=self.message.batch_id,
                index=claim.item.idx,
                attempts=claim.token,
                outcome=outcome,
            )

    def _release(self, claim: _Claim, *, unsent: bool) -> None:
        try:
            with self.container.pool.connection() as conn:
                store.release(conn, *self._key(claim), unsent=unsent)
        except ServiceUnavailable as exc:
            raise _Stop(exc) from exc

    def _log_item(
        self, claim: _Claim, ctx: Call | None, status: str, error_type: str | None = None
    ) -> None:
        access = ctx.access if ctx is not None else AccessFields()
        observability.log_event(
            "batch_item",
            "WARNING" if status != "succeeded" else "INFO",
            batch_id=self.message.batch_id,
            index=claim.item.idx,
            status=status,
            attempts=claim.token,
            owner=self.message.owner,
            agent_id=access.agent_id,
            model=access.model,
            conversation_id=access.conversation_id,
            tokens_in=access.tokens_in,
            tokens_out=access.tokens_out,
            upstream_latency_ms=access.upstream_latency_ms,
            latency_ms=round((time.perf_counter() - claim.started) * 1000, 3),
            error_type=error_type,
        )


def item_error(exc: GatewayError) -> dict[str, Any]:
    """An item's `error`: the gateway's error body, or Mistral's own for its 4xx."""
    if isinstance(exc, UpstreamRejected):
        try:
            upstream: Any = json.loads(exc.raw_body)
        except (ValueError, UnicodeDecodeError):
            upstream = exc.raw_body[:2000].decode("utf-8", "replace")
        return {
            "type": "invalid_request_error",
            "code": exc.code,
            "status": exc.status,
            "message": exc.message,
            "upstream": upstream,
        }
    body = exc.body()
    body.pop("object", None)
    body.pop("param", None)
    return {**body, "status": exc.status}

"""One delivery of a batch message, from envelope to acknowledgement.

    envelope -> message -> admit (or find the batch) -> run the items -> finish

Returning acknowledges the message; raising a `GatewayError` asks Pub/Sub to
deliver it again (a push answered non-2xx, a CloudEvent function that raised).
A message that can never succeed (not a Pub/Sub delivery, malformed, owner
unknown, too old, a batch id taken by another batch) is recorded as a
`rejected` batch and acknowledged, never retried forever. A transient failure
(database or Redis down, circuit open, out of time) raises after recording what
it can; items already finished stay finished, and the redelivery runs the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import observability
from shared.batch import _store as store
from shared.batch._config import BatchSettings
from shared.batch._envelope import (
    BadEnvelope,
    Envelope,
    envelope_from_cloudevent,
    envelope_from_http,
)
from shared.batch._message import BatchMessage, Rejection, derived_batch_id, parse_message
from shared.batch._run import BatchRun
from shared.container import Container, get_container
from shared.errors import GatewayError, ServiceUnavailable
from shared.observability import AccessFields

__all__ = ["MAX_DELIVERY_BYTES", "Delivered", "deliver", "deliver_cloud_event", "deliver_http"]

# Pub/Sub's largest message (10 MB of data) as base64 in its envelope, with room to spare.
MAX_DELIVERY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Delivered:
    """How an acknowledged delivery ended."""

    batch_id: str
    status: str  # succeeded | failed | rejected
    owner: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        return {
            "object": "batch.delivery",
            "batch_id": self.batch_id,
            "status": self.status,
            "counts": self.counts,
            "error": self.error,
        }


def deliver_http(
    container: Container,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    request_id: str,
    access: AccessFields,
) -> Delivered:
    """A push delivery, or a CloudEvent over HTTP in binary or structured mode: its
    headers and body, read up to `MAX_DELIVERY_BYTES` + 1 bytes."""
    try:
        if len(raw) > MAX_DELIVERY_BYTES:
            raise BadEnvelope(
                f"the delivery is larger than {MAX_DELIVERY_BYTES} bytes", raw, "http"
            )
        envelope = envelope_from_http(headers, raw)
    except BadEnvelope as bad:
        return _reject_envelope(container, bad)
    return deliver(container, envelope, request_id=request_id, access=access)


def deliver_cloud_event(
    attributes: dict[str, Any],
    data: Any,
    *,
    request_id: str,
    container: Container | None = None,
) -> Delivered:
    """The `@functions_framework.cloud_event` entry point's work.

    It is not behind `FunctionApp`, so it writes a `batch_delivery` line itself (the
    caller binds the log context, under `request_id`). Raises to have the event
    redelivered.
    """
    container = container or get_container()
    observability.configure_logging(container.settings)
    access = AccessFields()
    try:
        try:
            envelope = envelope_from_cloudevent(attributes, data)
        except BadEnvelope as bad:
            delivered = _reject_envelope(container, bad)
        else:
            delivered = deliver(container, envelope, request_id=request_id, access=access)
    except GatewayError as exc:
        observability.log_event(
            "batch_delivery",
            "WARNING",
            outcome="redeliver",
            error_type=exc.code,
            owner=access.owner,
        )
        raise
    else:
        observability.log_event(
            "batch_delivery", outcome="ack", batch_id=delivered.batch_id, status=delivered.status
        )
        return delivered


def deliver(
    container: Container,
    envelope: Envelope,
    *,
    request_id: str,
    access: AccessFields,
) -> Delivered:
    """Run one delivery of a message: return to acknowledge, raise to be redelivered."""
    settings = BatchSettings.load(container.settings)
    try:
        message = parse_message(envelope)
    except Rejection as rejection:
        return _reject(container, rejection, envelope)
    access.owner = message.owner
    expired = _expired(envelope, settings)
    existing = _admit(container, message, envelope, expired)
    if isinstance(existing, Rejection):
        return _reject(container, existing, envelope)
    # A batch admitted earlier is finished even past its age, but nothing new is started.
    run = BatchRun(
        container,
        settings,
        message,
        request_id=request_id,
        allow_start=not expired,
    )
    run.run()
    return _finish(container, message, run)


def _expired(envelope: Envelope, settings: BatchSettings) -> bool:
    if envelope.publish_time is None:
        return False
    age = (datetime.now(UTC) - envelope.publish_time).total_seconds()
    return age > settings.batch_max_age_s


def _admit(
    container: Container, message: BatchMessage, envelope: Envelope, expired: bool
) -> Rejection | None:
    """Create the batch, or accept the one this message already made; a Rejection if not."""
    with container.pool.connection() as conn:
        row = conn.one(
            "SELECT owner_id, message_id, status FROM batches WHERE id = :id",
            id=message.batch_id,
        )
        # No live batch holds the id: this message may create it.
        fresh = row is None or row["status"] == "rejected"
        if fresh and not expired and not store.owner_known(conn, message.owner):
            return Rejection(
                "unknown_owner",
                f"owner {message.owner!r} has no active API key, or is disabled",
                batch_id=message.batch_id,
                owner=message.owner,
            )
    if fresh:
        if expired:
            return Rejection(
                "expired",
                "the message was published longer ago than BATCH_MAX_AGE_S",
                batch_id=message.batch_id,
                owner=message.owner,
            )
        with container.pool.transaction() as conn:
            existing = store.admit(conn, message, envelope.message_id, envelope.publish_time)
        if existing is None:
            observability.log_event(
                "batch_admitted",
                batch_id=message.batch_id,
                owner=message.owner,
                items_total=len(message.items),
                message_id=envelope.message_id,
            )
            return None
    else:
        assert row is not None
        existing = store.Existing(**row)
    return _same_batch(container, message, envelope, existing)


def _same_batch(
    container: Container, message: BatchMessage, envelope: Envelope, existing: store.Existing
) -> Rejection | None:
    """A redelivery (or a republication of the same batch) goes on; any other use of the
    batch id is a conflict."""
    same = existing.owner_id == message.owner and existing.status != "rejected"
    if same and existing.message_id != envelope.message_id:
        with container.pool.connection() as conn:
            same = store.item_requests(conn, message.batch_id) == [
                item.request for item in message.items
            ]
    if same:
        return None
    return Rejection(
        "batch_conflict",
        f"batch id {message.batch_id!r} is already used by a different batch",
        batch_id=derived_batch_id(envelope.message_id),
        owner=message.owner,
    )


def _finish(container: Container, message: BatchMessage, run: BatchRun) -> Delivered:
    with container.pool.connection() as conn:
        counts = store.counts(conn, message.batch_id)
    unfinished = counts["pending"] + counts["running"]
    if unfinished:
        cause = run.cause
        observability.log_event(
            "batch_incomplete",
            "WARNING",
            batch_id=message.batch_id,
            items_pending=counts["pending"],
            items_running=counts["running"],
            reason=cause.code if cause is not None else "time_budget",
        )
        if cause is not None:
            raise cause
        raise ServiceUnavailable(
            f"batch {message.batch_id}: {unfinished} items are not finished yet", retry_after_s=10
        )
    total, failed = len(message.items), counts["failed"]
    status = "failed" if failed else "succeeded"
    error = (
        {
            "type": "invalid_request_error",
            "code": "items_failed",
            "message": f"{failed} of {total} items failed",
            "items_failed": failed,
            "items_total": total,
        }
        if failed
        else None
    )
    with container.pool.connection() as conn:
        closed = store.finish(conn, message.batch_id, status, error)
    if closed:
        # Once per batch, by the delivery that closed it (log-based metric batch_failures).
        observability.log_event(
            "batch_finished",
            "WARNING" if failed else "INFO",
            batch_id=message.batch_id,
            owner=message.owner,
            status=status,
            items_total=total,
            items_failed=failed,
            items_succeeded=counts["succeeded"],
        )
    return Delivered(message.batch_id, status, message.owner, counts, error)


def _reject(container: Container, rejection: Rejection, envelope: Envelope) -> Delivered:
    """Record a refused message as a rejected batch, under its id or, if a live batch holds
    that id, under the one derived from the message id."""
    error = rejection.error()
    owner = rejection.owner or ""
    batch_id = rejection.batch_id
    with container.pool.connection() as conn:
        for candidate in dict.fromkeys((batch_id, derived_batch_id(envelope.message_id))):
            if store.record_rejected(
                conn,
                batch_id=candidate,
                owner=owner,
                message_id=envelope.message_id,
                published_at=envelope.publish_time,
                error=error,
            ):
                batch_id = candidate
                break
        else:
            batch_id = ""  # both ids are taken by live batches: the log line is the record
    observability.log_event(
        "batch_rejected",
        "WARNING",
        batch_id=batch_id or None,
        owner=owner or None,
        reason=rejection.kind,
        message_id=envelope.message_id,
        error=rejection.message,
    )
    return Delivered(batch_id, "rejected", rejection.owner, error=error)


def _reject_envelope(container: Container, bad: BadEnvelope) -> Delivered:
    """A delivery that is not a Pub/Sub message at all: recorded under its digest."""
    batch_id = "bad_" + bad.digest[:40]
    error = {
        "type": "invalid_request_error",
        "code": "malformed_delivery",
        "message": bad.message,
        "mode": bad.mode,
    }
    with container.pool.connection() as conn:
        store.record_rejected(
            conn, batch_id=batch_id, owner="", message_id=None, published_at=None, error=error
        )
    observability.log_event(
        "batch_rejected",
        "WARNING",
        batch_id=batch_id,
        reason="malformed_delivery",
        error=bad.message,
    )
    return Delivered(batch_id, "rejected", None, error=error)

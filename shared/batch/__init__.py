"""Batches: Pub/Sub messages of conversation starts, each item run exactly once.

A message carries an owner and items (`_message`); it arrives as a push body or
a CloudEvent (`_envelope`); each delivery admits the batch and runs its
unfinished items with bounded concurrency through the start function's code
path (`_run`), every state change being one guarded UPDATE (`_store`), then
acknowledges or asks for redelivery (`_delivery`). docs/batches.md has the
message format, the state machine, the ack/retry table and the exactly-once
argument.

    delivered = deliver_http(container, headers, body, request_id=..., access=...)  # push / CE
    delivered = deliver_cloud_event(attributes, data, request_id=...)              # Eventarc
    # returning acknowledges; a GatewayError (503) asks Pub/Sub to redeliver
"""

from shared.batch._config import BatchSettings
from shared.batch._delivery import (
    MAX_DELIVERY_BYTES,
    Delivered,
    deliver,
    deliver_cloud_event,
    deliver_http,
)
from shared.batch._envelope import (
    MESSAGE_PUBLISHED,
    BadEnvelope,
    Envelope,
    envelope_from_cloudevent,
    envelope_from_http,
)
from shared.batch._message import (
    ITEM_FIELDS,
    MARKER_KEY,
    MAX_ITEMS,
    MESSAGE_FIELDS,
    BatchMessage,
    Item,
    Rejection,
    derived_batch_id,
    parse_message,
)
from shared.batch._run import batch_principal

__all__ = [
    "ITEM_FIELDS",
    "MARKER_KEY",
    "MAX_DELIVERY_BYTES",
    "MAX_ITEMS",
    "MESSAGE_FIELDS",
    "MESSAGE_PUBLISHED",
    "BadEnvelope",
    "BatchMessage",
    "BatchSettings",
    "Delivered",
    "Envelope",
    "Item",
    "Rejection",
    "batch_principal",
    "deliver",
    "deliver_cloud_event",
    "deliver_http",
    "derived_batch_id",
    "envelope_from_cloudevent",
    "envelope_from_http",
    "parse_message",
]

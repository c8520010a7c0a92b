"""`batch submit`: a batch message to Pub/Sub (deployed) or to the local batch function
(`make run`: posted as the push subscription would post it), then its progress."""

from __future__ import annotations

import base64
import importlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

from gatewayctl._client import ApiError, Client, quote
from gatewayctl._config import Target, UsageError

__all__ = ["follow", "load_message", "publish", "push_locally"]

TERMINAL = frozenset({"succeeded", "failed", "rejected"})
_EVENTS = "/gateway/v1/batches/events"


def load_message(path: str, owner: str) -> dict[str, Any]:
    """The message in FILE; its owner is the key's tenant when the file names none."""
    try:
        with open(path, encoding="utf-8") as handle:
            message = json.load(handle)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the batch file {path}: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("items"), list):
        raise UsageError(f"{path} is not a batch message (an object with items)")
    message.setdefault("owner", owner)
    message.setdefault("batch_id", f"batch-{uuid.uuid4().hex[:12]}")
    return message


def publish(topic: str, message: dict[str, Any]) -> str:
    """Publish to Pub/Sub; the push subscription delivers it to the batch function."""
    try:
        # Not a dependency of the gateway: only who publishes from the command line needs it.
        pubsub_v1 = importlib.import_module("google.cloud.pubsub_v1")
    except ImportError:
        raise UsageError(
            "publishing to Pub/Sub needs google-cloud-pubsub (pip install google-cloud-pubsub),"
            " or `gcloud pubsub topics publish` as README shows"
        ) from None
    publisher = pubsub_v1.PublisherClient()
    message_id: str = publisher.publish(topic, json.dumps(message).encode()).result(timeout=60)
    return message_id


def push_locally(target: Target, message: dict[str, Any], out: TextIO) -> threading.Thread:
    """Post the message to the batch function as Pub/Sub's push would, redelivering on 503."""
    if not target.batch_url:
        raise UsageError(
            "no batch function URL: run beside `make run` (.local/stack.json), set"
            " GATEWAY_BATCH_URL, or pass --topic to publish to Pub/Sub"
        )
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(message).encode()).decode(),
            "messageId": uuid.uuid4().hex,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "attributes": {},
        },
        "subscription": "projects/local/subscriptions/gatewayctl",
    }
    client = Client(target.batch_url, None, timeout_s=900)

    def deliver() -> None:
        for attempt in range(5):
            try:
                client.call("POST", _EVENTS, envelope)
                return
            except ApiError as exc:
                if exc.status != 503:
                    print(f"the batch function refused the delivery: {exc}", file=out)
                    return
                time.sleep(min(10.0, 2.0**attempt))
            except OSError as exc:
                print(f"the batch function could not be reached: {exc}", file=out)
                return

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    return thread


def _counts(client: Client, batch_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    path = f"/gateway/v1/batches/{quote(batch_id, safe='')}/items"
    for item in client.pages(path, {"limit": 1000}):
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return counts


def follow(
    client: Client,
    batch_id: str,
    out: TextIO,
    timeout_s: float,
    delivery: threading.Thread | None = None,
) -> dict[str, Any]:
    """Print progress until the batch ends (or the time runs out); its last state."""
    deadline = time.monotonic() + timeout_s
    path = f"/gateway/v1/batches/{quote(batch_id, safe='')}"
    last_line = ""
    batch: dict[str, Any] = {"id": batch_id, "status": "unknown"}
    while time.monotonic() < deadline:
        try:
            batch = client.call("GET", path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            batch = {"id": batch_id, "status": "waiting"}
        if batch["status"] != "waiting":
            counts = _counts(client, batch_id)
            done = counts.get("succeeded", 0) + counts.get("failed", 0)
            line = (
                f"batch {batch_id}: {batch['status']}, {done}/{batch.get('item_count')} finished,"
                f" {counts.get('failed', 0)} failed"
            )
            if line != last_line:
                print(line, file=out, flush=True)
                last_line = line
            if batch["status"] in TERMINAL and (delivery is None or not delivery.is_alive()):
                return batch
        elif delivery is not None and not delivery.is_alive():
            return batch  # delivered, refused before it was recorded
        time.sleep(0.3)
    print(f"batch {batch_id}: still {batch['status']} after {timeout_s:g}s", file=out)
    return batch

"""Idempotency-Key on the creates of tenant-owned resources (a library, a batch job).

A client that timed out and sends its create again must not make a second object (a
second batch job is a second spend). The key works as on conversation turns, through the
same record (`shared.limits.idempotency`, scoped to the tenant): the first request runs,
a repeat with the same body gets the first answer with `replayed` (waiting while the
first runs, 409 `idempotency_in_progress` past the key's lock), the same key with
another body is 422. Only a created object's answer is kept: a refusal (Mistral's 4xx,
a reference that is not the tenant's) frees the key for a corrected retry.

Uploads (`files.upload`, `libraries.documents.upload`) are not covered: their multipart
body streams through unheld, and the SDK writes a new boundary on each attempt, so
comparing two attempts would mean parsing each part as it passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.limits.idempotency import Idempotency, StoredResponse, request_hash
from shared.mistral import UpstreamResponse

__all__ = ["IDEMPOTENT_CREATES", "Created", "create_once"]

_JSON = "application/json"
# The creates that honour an Idempotency-Key, by the SDK's operation name (less `beta.`).
IDEMPOTENT_CREATES = frozenset({"libraries.create", "batch.jobs.create"})


@dataclass(frozen=True)
class Created:
    """A create's answer, as Mistral gave it (now or to the key's first request)."""

    status: int
    content_type: str
    body: bytes
    replayed: bool = False


def create_once(
    idempotency: Idempotency,
    tenant: str,
    key: str,
    operation: str,
    path: str,
    body: Any,
    create: Callable[[], UpstreamResponse],
) -> Created:
    """Run `create` once for `tenant`'s Idempotency-Key `key` and this JSON `body`."""
    if operation not in IDEMPOTENT_CREATES:
        raise ValueError(f"{operation} does not take an Idempotency-Key")

    def run() -> StoredResponse:
        answer = create()
        content_type = answer.headers.get("content-type", _JSON)
        return StoredResponse(answer.status, {"Content-Type": content_type}, answer.body)

    digest = request_hash(operation, path, body)
    stored, replayed = idempotency.once(tenant, key, operation, digest, run)
    content_type = stored.headers.get("Content-Type", _JSON)
    return Created(stored.status, content_type, stored.body, replayed)

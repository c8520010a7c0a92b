"""Idempotency-Key on the creates of tenant-owned resources: a library, a batch job, an
upload (a file, a library's document).

A client that timed out and sends its create again must not make a second object (a
second batch job is a second spend). The key works as on conversation turns, through the
same record (`shared.limits.idempotency`, scoped to the tenant): the first request runs,
a repeat with the same body gets the first answer with `replayed` (waiting while the
first runs, 409 `idempotency_in_progress` past the key's lock), the same key with
another body is 422. Only a created object's answer is kept: a refusal (Mistral's 4xx,
a reference that is not the tenant's) frees the key for a corrected retry.

The object's record carries the key (`records.made_under_key`), written in the same
transaction that makes the object the tenant's. If the gateway fails after that and
before the key's record is completed, the key stays claimed until its lock runs out;
the repeat that then takes it over finds the object the key already made and answers
with it (its body as the gateway recorded it, `Idempotent-Replayed: true`) instead of
making a second one. Uploads do not: their repeat after such a failure uploads again.

An upload's multipart body streams through unheld, so it cannot be compared before
Mistral is called. Its key is claimed for the upload to that path; the body is hashed as
it is relayed, with its boundary taken out (the SDK writes a new one on each attempt, so
the same parts are the same upload), and the hash kept beside the answer. A repeat is
read through (hashed, not held) once the first has its answer: the same hash gets the
answer replayed, another is 422. So a repeat of a large upload is still sent whole, and
an upload that carries a key costs the CPU of hashing it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.db import Pool
from shared.errors import ValidationFailed, field_error
from shared.limits.idempotency import Idempotency, PartsHash, StoredResponse, request_hash
from shared.mistral import UpstreamResponse
from shared.resources.operations import Upload
from shared.resources.records import Kind, made_under_key

__all__ = ["IDEMPOTENT_CREATES", "IDEMPOTENT_UPLOADS", "Created", "create_once", "upload_once"]

_JSON = "application/json"
# The creates that honour an Idempotency-Key, by the SDK's operation name (less `beta.`).
IDEMPOTENT_UPLOADS = frozenset({"files.upload", "libraries.documents.upload"})
# The JSON creates: the kind of object each makes, and the status Mistral answers it with
# (the SDK's success response for the operation).
_KINDS: dict[str, tuple[Kind, int]] = {
    "libraries.create": ("library", 201),
    "batch.jobs.create": ("batch_job", 200),
}
IDEMPOTENT_CREATES = frozenset(_KINDS) | IDEMPOTENT_UPLOADS
# Kept beside an upload's stored answer, never sent: the hash of the body it answered.
_BODY_HASH = "X-Gateway-Body-Sha256"


@dataclass(frozen=True)
class Created:
    """A create's answer, as Mistral gave it (now or to the key's first request)."""

    status: int
    content_type: str
    body: bytes
    replayed: bool = False


def create_once(
    idempotency: Idempotency,
    pool: Pool,
    tenant: str,
    key: str,
    operation: str,
    path: str,
    body: Any,
    create: Callable[[], UpstreamResponse],
) -> Created:
    """Run `create` once for `tenant`'s Idempotency-Key `key` and this JSON `body`; the
    object an earlier attempt under the key made, if its answer was never kept."""
    if operation not in _KINDS:
        raise ValueError(f"{operation} is no JSON create")
    kind, status = _KINDS[operation]
    recovered = False

    def run() -> StoredResponse:
        nonlocal recovered
        with pool.connection() as conn:
            earlier = made_under_key(conn, tenant, kind, key)
        if earlier is not None:
            recovered = True
            return StoredResponse(status, {"Content-Type": _JSON}, json.dumps(earlier).encode())
        answer = create()
        content_type = answer.headers.get("content-type", _JSON)
        return StoredResponse(answer.status, {"Content-Type": content_type}, answer.body)

    digest = request_hash(operation, path, body)
    stored, replayed = idempotency.once(tenant, key, operation, digest, run)
    content_type = stored.headers.get("Content-Type", _JSON)
    return Created(stored.status, content_type, stored.body, replayed or recovered)


def upload_once(
    idempotency: Idempotency,
    tenant: str,
    key: str,
    operation: str,
    path: str,
    upload: Upload,
    create: Callable[[Upload], UpstreamResponse],
) -> Created:
    """Run the upload `create` once for `tenant`'s Idempotency-Key `key` and this body
    (its parts, whatever its boundary), hashing the body as it streams."""
    if operation not in IDEMPOTENT_UPLOADS:
        raise ValueError(f"{operation} is no upload")
    body = PartsHash(upload.content_type)
    seen = Upload(upload.content_type, upload.length, body.through(upload.chunks))

    def run() -> StoredResponse:
        answer = create(seen)
        body.finish(seen.chunks)  # the whole body, should Mistral answer before reading it
        content_type = answer.headers.get("content-type", _JSON)
        headers = {"Content-Type": content_type, _BODY_HASH: body.hexdigest()}
        return StoredResponse(answer.status, headers, answer.body)

    # Claimed for "an upload to this path": the body's own hash is known only once read.
    claimed = request_hash(
        operation, path, {"multipart": upload.content_type.split(";")[0].strip().lower()}
    )
    stored, replayed = idempotency.once(tenant, key, operation, claimed, run)
    if replayed:
        body.finish(seen.chunks)
        if stored.headers.get(_BODY_HASH) != body.hexdigest():
            raise ValidationFailed(
                [
                    field_error(
                        ("header", "Idempotency-Key"),
                        "this key was used with a different request",
                        "value_error",
                    )
                ]
            )
    content_type = stored.headers.get("Content-Type", _JSON)
    return Created(stored.status, content_type, stored.body, replayed)

"""`AccessFields`: what a request's access line says beyond method, route and status."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["AccessFields"]


@dataclass
class AccessFields:
    """The fields a request fills in as it goes, written once on its access line.

    The first fourteen are the line's own (Terraform's log-based metrics read them by
    name: `ACCESS_LINE_FIELDS`); the rest are for the request's other lines (a batch
    item's) and for the line's bookkeeping.
    """

    owner: str | None = None
    key_prefix: str | None = None
    agent_id: str | None = None
    model: str | None = None
    conversation_id: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    # What Mistral bills that is not tokens: OCR's pages, a transcription's audio seconds.
    pages: int | None = None
    audio_seconds: int | None = None
    upstream_latency_ms: float | None = None
    rate_limit: str | None = None
    circuit: str | None = None
    idempotent_replay: bool | None = None
    error_type: str | None = None
    # Not on the access line.
    policy_hits: int | None = None
    idempotent_recovered: bool | None = None
    stored: bool | None = None
    abandoned_stream_read: bool | None = None
    # Set by `deferred_stream`: the line is written when the streamed body ends.
    deferred: bool = False
    # An unexpected exception the request ended with, logged (once) before the line.
    exception: BaseException | None = None
    # Set once the line is written: a second call writes nothing.
    emitted: bool = False


LINE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AccessFields))[:14]

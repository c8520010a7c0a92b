"""Conversations Mistral made but the database refused: remembered, stored on next use.

A start (or restart) whose write failed after Mistral answered leaves a conversation
the caller knows (it got `Gateway-Stored: false` with the answer) and the gateway
does not: its next append would be a 404. So the gateway remembers it in Redis for a
week: the tenant, the key, the conversation's request fields and the turn's usage.
An append or restart that names it, by the same tenant, first stores it from
Mistral's history (with the lost turn's usage event), then goes on as usual.

Best effort by nature: with Redis away as well, nothing is remembered (the failure
is logged, as before). Another tenant naming the id gets the usual 404.

A start (or restart) sent with an `Idempotency-Key` is remembered too, from the
moment Mistral names the conversation it made (`remember_start`): if the gateway
then fails before the key's record is completed (a crash, the database gone), the
repeat finds that conversation (`started`) and answers with it, instead of asking
Mistral for a second one, as a batch item's takeover does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import redis

__all__ = ["UNSTORED_TTL_S", "Unstored", "remember", "remember_start", "started", "take"]

log = logging.getLogger(__name__)

UNSTORED_TTL_S = 7 * 24 * 3600
_PREFIX = "gw:unstored:"
_STARTED = "gw:idem:started:"


@dataclass(frozen=True)
class Unstored:
    """What storing the conversation later needs, and nothing of the turn's inputs."""

    owner: str
    key_id: str
    operation: str
    fields: dict[str, Any]
    parent: list[str] | None
    prompt_tokens: int
    completion_tokens: int
    agent_id: str | None
    model: str | None


def remember(client: redis.Redis, conversation_id: str, unstored: Unstored) -> bool:
    """Keep `unstored` for UNSTORED_TTL_S; False (logged) if Redis refused."""
    fields = {k: v for k, v in unstored.fields.items() if k not in ("inputs", "stream")}
    record = json.dumps(asdict(unstored) | {"fields": fields}, separators=(",", ":"))
    try:
        client.set(_PREFIX + conversation_id, record, ex=UNSTORED_TTL_S)
    except redis.RedisError as exc:
        log.error(
            "conversation %s is not stored and could not be remembered (%s)",
            conversation_id,
            type(exc).__name__,
        )
        return False
    return True


def take(client: redis.Redis, conversation_id: str, owner: str) -> Unstored | None:
    """The owner's unstored conversation of that id, taken (so one request stores it);
    None if there is none, it is another tenant's, or Redis is away. A caller that
    cannot store it after all gives it back with `remember`."""
    key = _PREFIX + conversation_id
    try:
        raw = client.get(key)
        if raw is None:
            return None
        unstored = Unstored(**json.loads(raw))
        # Another tenant's is left untouched; of two requests for the owner's, one takes it.
        if unstored.owner != owner or client.getdel(key) is None:
            return None
    except (redis.RedisError, ValueError, TypeError):
        return None
    return unstored


def _started_key(owner: str, key: str) -> str:
    # Hashed: an Idempotency-Key is the caller's text, of any length and content.
    return _STARTED + hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()


def remember_start(
    client: redis.Redis, owner: str, key: str, digest: bytes, conversation_id: str, ttl_s: int
) -> None:
    """Mistral made `conversation_id` for the request `digest` under this key (best effort)."""
    record = json.dumps({"conversation_id": conversation_id, "request": digest.hex()})
    try:
        client.set(_started_key(owner, key), record, ex=ttl_s)
    except redis.RedisError as exc:
        log.warning("idempotent start could not be remembered (%s)", type(exc).__name__)


def started(client: redis.Redis, owner: str, key: str, digest: bytes) -> str | None:
    """The conversation an earlier attempt of this same request made, if one is known."""
    try:
        raw = client.get(_started_key(owner, key))
        record = json.loads(raw) if raw is not None else None
    except (redis.RedisError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("request") != digest.hex():
        return None
    conversation_id = record.get("conversation_id")
    return conversation_id if isinstance(conversation_id, str) else None

"""Conversations Mistral made but the database refused: remembered, stored on next use.

A start (or restart) whose write failed after Mistral answered leaves a conversation
the caller knows (it got `Gateway-Stored: false` with the answer) and the gateway
does not: its next append would be a 404. So the gateway remembers it in Redis for a
week: the tenant, the key, the conversation's request fields and the turn's usage.
An append or restart that names it, by the same tenant, first stores it from
Mistral's history (with the lost turn's usage event), then goes on as usual.

Best effort by nature: with Redis away as well, nothing is remembered (the failure
is logged, as before). Another tenant naming the id gets the usual 404.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import redis

__all__ = ["UNSTORED_TTL_S", "Unstored", "remember", "take"]

log = logging.getLogger(__name__)

UNSTORED_TTL_S = 7 * 24 * 3600
_PREFIX = "gw:unstored:"


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

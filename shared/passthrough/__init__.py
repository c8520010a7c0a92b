"""Metered pass-through: stateless Mistral calls that spend tokens (chat, fim, embeddings,
agents completions, classifiers and moderations, OCR, audio), relayed unchanged.

    build_passthrough -> allow-lists (+ the agent is the tenant's) -> rate limit + token
      reservation -> Mistral (relayed as it arrives, when streaming) -> settle + usage

Nothing is stored but the usage event. `request` parses what the gateway reads of a
call; `relay` runs it. Neither knows HTTP: the start function maps their results.
"""

from shared.passthrough.relay import PassResult, PassStream, run_passthrough
from shared.passthrough.request import MEDIA_OPERATIONS, Passthrough, build_passthrough

__all__ = [
    "MEDIA_OPERATIONS",
    "PassResult",
    "PassStream",
    "Passthrough",
    "build_passthrough",
    "run_passthrough",
]

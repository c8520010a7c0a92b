"""The models Mistral serves (`GET /v1/models`, `GET /v1/models/{model_id}`), as its SDK reads them.

Each card is built from the SDK's own pydantic models (`BaseModelCard`, `FTModelCard`,
`ModelList`) and dumped as JSON, so the shapes cannot drift from what programs parse.
The SDK is imported on the first models call, not when the stand-in starts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ._wire import Reply, not_found

__all__ = ["FINE_TUNED", "MODEL_IDS", "list_models", "retrieve_model"]

# Base models: id, aliases, and the capabilities beyond chat.
_BASE: tuple[tuple[str, tuple[str, ...], dict[str, bool]], ...] = (
    ("mistral-small-latest", ("mistral-small-2506",), {"function_calling": True, "vision": True}),
    ("mistral-large-latest", ("mistral-large-2411",), {"function_calling": True}),
    ("codestral-latest", ("codestral-2508",), {"completion_fim": True, "function_calling": True}),
    ("mistral-embed", (), {"completion_chat": False}),
)
FINE_TUNED = "ft:mistral-small-latest:standin:20260101:a1b2c3d4"
MODEL_IDS: tuple[str, ...] = (*(model_id for model_id, _, _ in _BASE), FINE_TUNED)
# A fixed creation time (2026-01-01), so two calls answer the same bytes.
_CREATED = 1767225600


@cache
def _listing() -> dict[str, Any]:
    """The list, dumped from the SDK's models as Mistral's JSON."""
    from mistralai.client import models

    cards: list[Any] = [
        models.BaseModelCard(
            id=model_id,
            created=_CREATED,
            name=model_id,
            description=f"The stand-in's {model_id}",
            max_context_length=131072,
            aliases=list(aliases),
            capabilities=models.ModelCapabilities(**{"completion_chat": True, **extra}),
        )
        for model_id, aliases, extra in _BASE
    ]
    cards.append(
        models.FTModelCard(
            id=FINE_TUNED,
            created=_CREATED,
            owned_by="standin",
            root="mistral-small-latest",
            job="00000000-0000-4000-8000-000000000001",
            archived=False,
            max_context_length=131072,
            capabilities=models.ModelCapabilities(completion_chat=True, fine_tuning=True),
        )
    )
    listing: dict[str, Any] = models.ModelList(data=cards).model_dump(mode="json", by_alias=True)
    return listing


def list_models() -> Reply:
    return Reply(200, _listing())


def retrieve_model(model_id: str) -> Reply:
    for card in _listing()["data"]:
        if card["id"] == model_id:
            return Reply(200, card)
    raise not_found("Model", model_id)

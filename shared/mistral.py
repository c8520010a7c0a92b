"""The one place that talks to Mistral."""

from __future__ import annotations

from typing import Any

from shared.config import Settings

__all__ = ["build_client"]


def build_client(settings: Settings) -> Any:
    """The official SDK client, configured once per process."""
    from mistralai.client import Mistral

    return Mistral(
        api_key=settings.mistral_api_key,
        server_url=settings.mistral_server_url,
        timeout_ms=settings.mistral_timeout_ms,
    )

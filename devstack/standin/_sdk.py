"""The SDK's own models, for the stand-in's requests: Mistral's server checks a body against
the same definitions its SDK is generated from, so the stand-in does too."""

from __future__ import annotations

from typing import Any

from ._wire import unprocessable

__all__ = ["sdk_models", "sdk_request"]


def sdk_models() -> Any:
    from mistralai.client import models

    return models


def sdk_request(model: str, body: Any) -> Any:
    """`body` as the SDK's request model `model`, or the 422 Mistral answers."""
    from pydantic import ValidationError

    if not isinstance(body, dict):
        raise unprocessable(
            [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
        )
    try:
        return getattr(sdk_models(), model).model_validate(body)
    except ValidationError as error:
        raise unprocessable(
            [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in error.errors(include_url=False)
            ]
        ) from None
    except ValueError as error:
        # The SDK's own discriminators raise a plain ValueError (a message without `role`).
        raise unprocessable([{"loc": ["body"], "msg": str(error), "type": "value_error"}]) from None

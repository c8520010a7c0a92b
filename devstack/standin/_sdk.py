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
        validated = getattr(sdk_models(), model).model_validate(body)
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
    problems = _unset_given(validated, body, ["body"])
    if problems:
        raise unprocessable(problems)
    return validated


def _unset_given(model: Any, given: dict[str, Any], loc: list[Any]) -> list[dict[str, Any]]:
    """Fields given a value that only the SDK's `Unset` took.

    The SDK types an optional field `int | None | Unset`, and `Unset` is a model without
    fields, so pydantic reads `{}` as "not given"; Mistral's server types the field
    `int | None` and refuses `{}`. Here it is refused too, where it is, at any depth.
    """
    from mistralai.client.types.basemodel import Unset
    from pydantic import BaseModel

    problems: list[dict[str, Any]] = []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        if key not in given:
            continue
        value, raw = getattr(model, name), given[key]
        if isinstance(value, Unset):
            problems.append(
                {"loc": [*loc, key], "msg": "Input should not be an object", "type": "type_error"}
            )
        elif isinstance(value, BaseModel) and isinstance(raw, dict):
            problems += _unset_given(value, raw, [*loc, key])
        elif isinstance(value, list) and isinstance(raw, list):
            for i, (item, raw_item) in enumerate(zip(value, raw, strict=False)):
                if isinstance(item, BaseModel) and isinstance(raw_item, dict):
                    problems += _unset_given(item, raw_item, [*loc, key, i])
    return problems

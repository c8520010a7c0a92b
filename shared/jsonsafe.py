"""JSON as PostgreSQL's jsonb takes it: finite numbers, no NUL, no lone surrogate.

Python's `json` reads `NaN`, `Infinity`, `-Infinity` and `1e400` (a float that
overflows to infinity); PostgreSQL's `jsonb` refuses all four, as it refuses a NUL
character and a lone surrogate. A request body holding one would reach Mistral,
then fail to be stored on every turn. So bodies are read with `loads`, which turns
such a number into a `NonFinite` marker that validation answers with 422; and what
Mistral gives back is written through `storable`, which replaces whatever the
database cannot hold, so one odd value never stops a conversation being stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidJSON, ValidationFailed, field_error

__all__ = [
    "MAX_JSON_DEPTH",
    "TOO_DEEP",
    "NonFinite",
    "check_storable",
    "check_text",
    "loads",
    "storable",
]

_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class NonFinite:
    """A number JSON text held that is not a finite double (its text as written)."""

    text: str


def _float(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


_DECODER = json.JSONDecoder(parse_constant=NonFinite, parse_float=_float)


def loads(raw: bytes | str) -> Any:
    """`json.loads`, with every non-finite number read as a `NonFinite` marker.

    One decoder serves every call (`json.loads` with these arguments builds a new one
    each time); bytes are decoded as `json.loads` decodes them.
    """
    if isinstance(raw, str):
        if raw.startswith("\ufeff"):  # json.loads refuses a BOM in text: its own error
            return json.loads(raw, parse_constant=NonFinite, parse_float=_float)
    else:
        raw = raw.decode(json.detect_encoding(raw), "surrogatepass")
    return _DECODER.decode(raw)


def storable(value: Any) -> tuple[Any, bool]:
    """`value` with what jsonb cannot hold replaced, and whether anything was.

    A non-finite number becomes null; a NUL character or a lone surrogate becomes
    U+FFFD, in strings and keys alike. Iterative, so any depth is walked.
    """
    changed = False

    def fix_text(text: str) -> str:
        nonlocal changed
        if "\x00" in text:
            text = text.replace("\x00", _REPLACEMENT)
            changed = True
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                # A surrogate encoded on its own decodes as three replacement characters.
                text = text.replace(_REPLACEMENT * 3, _REPLACEMENT)
                changed = True
        return text

    def fix(item: Any) -> Any:
        nonlocal changed
        if isinstance(item, str):
            return fix_text(item)
        if isinstance(item, float) and not math.isfinite(item):
            changed = True
            return None
        if isinstance(item, NonFinite):
            changed = True
            return None
        return item

    root: list[Any] = [value]
    pending: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while pending:
        parent, slot, item = pending.pop()
        if isinstance(item, dict):
            copy: dict[str, Any] = {}
            for key, child in item.items():
                new_key = fix_text(key) if isinstance(key, str) else key
                copy[new_key] = child
                pending.append((copy, new_key, child))
            parent[slot] = copy
        elif isinstance(item, list):
            items = list(item)
            parent[slot] = items
            pending.extend((items, i, child) for i, child in enumerate(items))
        else:
            parent[slot] = fix(item)
    return root[0], changed


# Deeper bodies are refused before anything walks them recursively (the input policy,
# json.dumps on the way to Mistral and into PostgreSQL, the reads), all of which would
# hit Python's recursion limit near 1,000 levels. Tool schemas nest a dozen levels.
MAX_JSON_DEPTH = 100
TOO_DEEP = f"the request body nests deeper than {MAX_JSON_DEPTH} levels"


def check_storable(body: Any, where: tuple[str | int, ...] = ("body",)) -> None:
    """400 beyond MAX_JSON_DEPTH; 422 for a value PostgreSQL cannot store: a string or
    key with a NUL character or a lone surrogate (`\\ud800` is valid JSON but not UTF-8),
    or a number that is not finite (`NaN`, `Infinity`, `1e400`, read by
    `jsonsafe.loads`). Any would otherwise be answered by Mistral, then fail to be stored."""
    # loc grows by one per level: the value itself is level 1.
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(body, where)]
    while pending:
        value, loc = pending.pop()
        if isinstance(value, dict | list) and len(loc) > MAX_JSON_DEPTH:
            raise InvalidJSON(TOO_DEEP)
        if isinstance(value, str):
            check_text(value, loc)
        elif isinstance(value, NonFinite | float) and not _finite(value):
            raise ValidationFailed([field_error(loc, _NON_FINITE_MESSAGE, "finite_number")])
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key, loc)
                pending.append((item, (*loc, key)))
        elif isinstance(value, list):
            pending.extend((item, (*loc, i)) for i, item in enumerate(value))


_NON_FINITE_MESSAGE = "Input should be a finite number"
_NUL_MESSAGE = "NUL characters (\\u0000) are not accepted"
_SURROGATE_MESSAGE = "lone surrogates (\\ud800-\\udfff) are not valid Unicode text"


def _finite(value: float | NonFinite) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def check_text(value: str, loc: tuple[str | int, ...]) -> None:
    if "\x00" in value:
        raise ValidationFailed([field_error(loc, _NUL_MESSAGE, "string")])
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed([field_error(loc, _SURROGATE_MESSAGE, "string")]) from None

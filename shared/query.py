"""Query-string integers and booleans: the one parser of paging numbers (and of flags)
every route uses."""

from __future__ import annotations

from shared.errors import ValidationFailed, field_error

__all__ = ["query_bool", "query_integer"]

# Past any bound either way: no need to convert a thousand digits to find out.
_MAX_DIGITS = 18


def query_integer(
    raw: str | None,
    name: str,
    *,
    default: int,
    minimum: int,
    maximum: int | None = None,
    clamp: bool = False,
) -> int:
    """`raw` as a plain decimal integer in [minimum, maximum]; absent or empty: `default`.

    Plain means an optional sign and ASCII digits: `int()` alone would take " 7", "7_0"
    and "٧". With `clamp`, a value above `maximum` is `maximum` (Mistral's lists cap
    `page_size`); otherwise it is refused. Refusals are 422 in Mistral's shape, each
    naming `("query", name)`.
    """
    if not raw:
        return default
    digits = raw[1:] if raw[:1] in "+-" else raw
    if not (digits.isascii() and digits.isdigit()):
        _refuse(
            name,
            "Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        )
    if len(digits) <= _MAX_DIGITS:
        value = int(raw)
    else:
        value = -(10**_MAX_DIGITS) if raw.startswith("-") else 10**_MAX_DIGITS
    if value < minimum:
        _refuse(name, f"Input should be greater than or equal to {minimum}", "greater_than_equal")
    if maximum is not None and value > maximum:
        if clamp:
            return maximum
        _refuse(name, f"Input should be less than or equal to {maximum}", "less_than_equal")
    return value


# What Mistral's server (pydantic) reads as a boolean in a query string.
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def query_bool(raw: str | None, name: str) -> bool | None:
    """`raw` as a boolean (`true`/`false`, `1`/`0`, any case); absent: None; 422 otherwise."""
    if raw is None:
        return None
    value = _BOOLEANS.get(raw.lower())
    if value is None:
        _refuse(name, "Input should be a valid boolean, unable to interpret input", "bool_parsing")
    return value


def _refuse(name: str, message: str, kind: str) -> None:
    raise ValidationFailed([field_error(("query", name), message, kind)])

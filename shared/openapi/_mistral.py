"""Mistral's response shapes, derived from the SDK the gateway's users run.

The `mistralai` SDK pinned in requirements.txt is the one source: its pydantic models
are what a program written against Mistral parses, so the document's response schemas
are their JSON Schemas (validation mode: what the SDK accepts), not a hand copy that
could drift. The SDK's own wrappers are turned back into plain JSON Schema:

- `Unset` (a field left out) is not a wire value, so it leaves every union;
- `Unknown*` variants hold what the SDK keeps of a type it does not know (an open
  union: a newer tool or event type); on the wire that is any object;
- `Nullable_*` and `OptionalNullable_*` wrappers are inlined, and titles dropped.

Building this imports the SDK's models (~0.3 s): it runs only when the document is
built (`shared.openapi` loads `_build` lazily), never at a function's cold start.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["MISTRAL_PREFIX", "RESPONSES", "sdk_version", "response_schemas"]

Json = dict[str, Any]

# The document's name for each response shape -> the SDK model it is.
RESPONSES: dict[str, str] = {
    "ConversationResponse": "ConversationResponse",
    "ConversationUsageInfo": "ConversationUsageInfo",
    "Conversation": "ResponseV1ConversationsGet",
    "ConversationHistory": "ConversationHistory",
    "ConversationMessages": "ConversationMessages",
    "Agent": "Agent",
    "AgentListPage": "AgentListPage",
    "AgentAliasResponse": "AgentAliasResponse",
}
# The SDK's inner definitions are named `Mistral.<SDK name>` in the document, apart from
# the gateway's own schemas.
MISTRAL_PREFIX = "Mistral."
_REF = "#/components/schemas/"
_INLINED = ("Nullable_", "OptionalNullable_")


def sdk_version() -> str:
    return importlib.metadata.version("mistralai")


def response_schemas() -> dict[str, Json]:
    """The document's schemas for Mistral's responses: one per RESPONSES name, plus the SDK
    definitions they refer to (named with MISTRAL_PREFIX)."""
    from mistralai.client import models
    from pydantic import TypeAdapter  # noqa: F811 (also imported for the type checker)

    keys: list[tuple[str, Literal["validation"], TypeAdapter[Any]]] = [
        (name, "validation", TypeAdapter(getattr(models, model)))
        for name, model in RESPONSES.items()
    ]
    top, definitions = TypeAdapter.json_schemas(
        keys, ref_template=_REF + MISTRAL_PREFIX + "{model}"
    )
    defs: dict[str, Json] = definitions.get("$defs", {})
    inline = {name: schema for name, schema in defs.items() if name.startswith(_INLINED)}
    schemas: dict[str, Json] = {}
    for name, schema in defs.items():
        if name in inline or name == "Unset":
            continue
        schemas[MISTRAL_PREFIX + name] = _clean(schema, inline)
    for (name, _), schema in top.items():
        schemas[name] = _clean(schema, inline)
    return schemas


def _clean(node: Any, inline: dict[str, Json]) -> Any:
    if isinstance(node, list):
        return [_clean(item, inline) for item in node]
    if not isinstance(node, dict):
        return node
    target = node.get("$ref")
    if isinstance(target, str):
        name = target.removeprefix(_REF + MISTRAL_PREFIX)
        if name in inline:
            return _clean(inline[name], inline)
        if name.startswith("Unknown"):
            return {"type": "object", "description": "A variant this SDK does not know."}
    cleaned = {key: _clean(value, inline) for key, value in node.items() if key != "title"}
    for union in ("anyOf", "oneOf"):
        if union in cleaned:
            options = _unique(_flatten(union, [o for o in cleaned[union] if not _is_unset(o)]))
            if len(options) == 1 and len(cleaned) == 1:
                return options[0]
            cleaned[union] = options
    return cleaned


def _flatten(union: str, options: list[Any]) -> list[Any]:
    """`anyOf: [anyOf: [a, b], c]` is `anyOf: [a, b, c]` (the SDK's wrappers nest them)."""
    flat: list[Any] = []
    for option in options:
        if isinstance(option, dict) and set(option) == {union}:
            flat.extend(option[union])
        else:
            flat.append(option)
    return flat


def _is_unset(node: Any) -> bool:
    return isinstance(node, dict) and node.get("$ref") == _REF + MISTRAL_PREFIX + "Unset"


def _unique(options: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for option in options:
        if option not in seen:
            seen.append(option)
    return seen

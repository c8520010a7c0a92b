"""Mistral's response shapes, derived from the SDK the gateway's users run.

The `mistralai` SDK pinned in requirements.txt is the one source: its pydantic models
are what a program written against Mistral parses, so the document's response schemas
are their JSON Schemas (validation mode: what the SDK accepts), not a hand copy that
could drift. The SDK's own wrappers are turned back into plain JSON Schema:

- `Unset` (a field left out) is not a wire value, so it leaves every union;
- `Unknown*` variants hold what the SDK keeps of a type it does not know (an open
  union: a newer tool or event type); on the wire that is any object;
- `Nullable_*` and `OptionalNullable_*` wrappers are inlined, and titles dropped;
- a tag (a `type` field whose schema is one constant, with that constant as its default)
  is required and never null: the SDK always sends it, Mistral always answers it, and
  Mistral chooses a union's member by it (a body without it is not what the SDK sends).

Building this imports the SDK's models (~0.3 s): it runs only when the document is
built (`shared.openapi` loads `_build` lazily), never at a function's cold start.
"""

from __future__ import annotations

import importlib.metadata
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "MISTRAL_PREFIX",
    "OPEN_UNIONS",
    "REQUEST_PREFIX",
    "SERVER_RULES",
    "RESPONSES",
    "Derived",
    "derive",
    "response_schemas",
    "sdk_version",
]

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
# What Mistral's server refuses in a request body that its SDK's models do not say: SDK
# model -> field -> JSON Schema keywords added to the field (request bodies only). The
# stand-in refuses the same (devstack/standin/_validate.py); each entry is one found by
# fuzzing the document against it. Keep this list short: anything here is a hand copy.
SERVER_RULES: dict[str, dict[str, Json]] = {
    "CompletionArgs": {"max_tokens": {"minimum": 0}},
}
# Unions Mistral grows, open in the document: a known `type` has the SDK's shape for it,
# another passes (the gateway relays what it does not know). Name -> description.
OPEN_UNIONS: dict[str, str] = {
    "Entry": "A conversation entry: a known `type` has the SDK's shape, another passes.",
    "ConversationEvent": (
        "The JSON in one event's `data`. Clients choose the variant by `type`, not by the SSE"
        " event name. A stream that breaks ends with `conversation.response.error`."
    ),
}
# The SDK's inner definitions are named `Mistral.<SDK name>` in the document, apart from
# the gateway's own schemas.
MISTRAL_PREFIX = "Mistral."
# Request bodies are a pass of their own (open enums closed): `Mistral.Request.<SDK name>`.
REQUEST_PREFIX = "Mistral.Request."
_REF = "#/components/schemas/"
_INLINED = ("Nullable_", "OptionalNullable_")
# The default pydantic writes for a field the SDK leaves out: not a wire value.
_UNSET_DEFAULT = "~?~unset~?~sentinel~?~"


def sdk_version() -> str:
    return importlib.metadata.version("mistralai")


def response_schemas() -> dict[str, Json]:
    """The document's schemas for Mistral's responses: one per RESPONSES name, plus the SDK
    definitions they refer to (named with MISTRAL_PREFIX)."""
    return derive(()).schemas


@dataclass(frozen=True)
class Derived:
    """What the SDK's models give the document."""

    # Component schemas: RESPONSES's names, the open unions, and `Mistral.<model>` for
    # every SDK model asked for and every definition they refer to.
    schemas: dict[str, Json]
    # Parameters model -> its query parameters, as OpenAPI parameter objects.
    queries: dict[str, tuple[Json, ...]]


def derive(
    sdk_models: Iterable[str],
    parameter_models: Iterable[str] = (),
    request_models: Iterable[str] = (),
) -> Derived:
    """Derive the schemas of RESPONSES and of `sdk_models` (each named `Mistral.<model>`),
    the request bodies `request_models` (each `Mistral.Request.<model>`, see `closed`), and
    the query parameters of `parameter_models`, from the SDK's pydantic classes."""
    from mistralai.client import models
    from pydantic import TypeAdapter  # noqa: F811 (also imported for the type checker)

    wanted = {**RESPONSES, **{MISTRAL_PREFIX + m: m for m in sdk_models}}
    parameter_models = tuple(dict.fromkeys(parameter_models))
    keys: list[tuple[str, Literal["validation"], TypeAdapter[Any]]] = [
        (name, "validation", TypeAdapter(getattr(models, model))) for name, model in wanted.items()
    ]
    keys += [
        (f"query:{model}", "validation", TypeAdapter(getattr(models, model)))
        for model in parameter_models
    ]
    variants = {"Entry": _entry_variants(models), "ConversationEvent": _event_variants(models)}
    keys += [
        (f"{union}:{tag}", "validation", TypeAdapter(cls))
        for union, by_tag in variants.items()
        for tag, cls in by_tag.items()
    ]
    top, schemas, clean = _pass(keys, MISTRAL_PREFIX, closed=False)
    for union, by_tag in variants.items():
        schemas[union] = {
            "type": "object",
            "description": OPEN_UNIONS[union],
            "properties": {"type": {"type": "string"}},
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": tag}}, "required": ["type"]},
                    "then": clean(top[(f"{union}:{tag}", "validation")]),
                }
                for tag in by_tag
            ],
        }
    schemas["ConversationEvent"]["required"] = ["type"]
    queries = {
        model: _query_parameters(
            getattr(models, model), clean(top[(f"query:{model}", "validation")]), schemas
        )
        for model in parameter_models
    }
    request_keys: list[tuple[str, Literal["validation"], TypeAdapter[Any]]] = [
        (REQUEST_PREFIX + m, "validation", TypeAdapter(getattr(models, m)))
        for m in dict.fromkeys(request_models)
    ]
    if request_keys:
        requests = _pass(request_keys, REQUEST_PREFIX, closed=True)[1]
        for model, fields in SERVER_RULES.items():
            target = requests.get(REQUEST_PREFIX + model)
            if target is not None:
                properties = target["properties"]
                for name, rule in fields.items():
                    properties[name] = {**properties[name], **rule}
        schemas |= requests
    return Derived(schemas, queries)


def _pass(
    keys: list[tuple[str, Literal["validation"], TypeAdapter[Any]]], prefix: str, *, closed: bool
) -> tuple[dict[Any, Json], dict[str, Json], Any]:
    """One JSON Schema pass over `keys`: (the top schemas by key, the cleaned components
    named `prefix` + definition, the cleaning function for further schemas of the pass)."""
    from pydantic import TypeAdapter  # noqa: F811 (also imported for the type checker)

    top, definitions = TypeAdapter.json_schemas(keys, ref_template=_REF + prefix + "{model}")
    defs: dict[str, Json] = definitions.get("$defs", {})
    cleaning = _Cleaning(
        {name: schema for name, schema in defs.items() if name.startswith(_INLINED)},
        _REF + prefix,
        closed,
    )
    schemas: dict[str, Json] = {}
    for name, schema in defs.items():
        if name in cleaning.inline or name == "Unset":
            continue
        schemas[prefix + name] = cleaning.clean(schema)
    for (name, _), schema in top.items():
        if ":" not in name and schemas.get(name) is None:
            cleaned = cleaning.clean(schema)
            # A model is its own definition: `Mistral.X` is not a reference to itself.
            if cleaned != {"$ref": _REF + name}:
                schemas[name] = cleaned
    return top, schemas, cleaning.clean


def _query_parameters(model: Any, schema: Json, schemas: dict[str, Json]) -> tuple[Json, ...]:
    """The query parameters of an SDK request model: its fields marked `query`."""
    while "$ref" in schema:
        schema = schemas[schema["$ref"].removeprefix(_REF)]
    properties = schema.get("properties", {})
    found = []
    for name, field in model.model_fields.items():
        query = next((m.query for m in field.metadata if getattr(m, "query", None)), None)
        if query is None:
            continue
        wire = field.alias or name
        value = _not_null(properties.get(wire, {}))
        if "default" in value and value["default"] is None:
            del value["default"]
        parameter: Json = {"name": wire, "in": "query", "required": field.is_required()}
        if getattr(query, "serialization", None) == "json":
            parameter["content"] = {"application/json": {"schema": value}}
        else:
            parameter["schema"] = value
        found.append(parameter)
    return tuple(found)


def _not_null(schema: Json) -> Json:
    """A query string cannot say null: the null option of a union leaves it."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return dict(schema)
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    if len(kept) == 1:
        return {**rest, **kept[0]}
    return {**rest, "anyOf": kept}


def _entry_variants(models: Any) -> dict[str, type]:
    """The entry classes of a history, by their `type` (the SDK's `Entry` union)."""
    alias = typing.get_args(models.ConversationHistory.model_fields["entries"].annotation)[0]
    classes = typing.get_args(alias.__value__)
    return {cls.model_fields["type"].default: cls for cls in classes}


def _event_variants(models: Any) -> dict[str, type]:
    """The event classes by `type`, as the SDK's open union of event data chooses them."""
    for meta in typing.get_args(models.ConversationEventsData)[1:]:
        found = getattr(getattr(meta, "func", None), "keywords", {}).get("variants")
        if found:
            return dict(found)
    raise LookupError("the SDK's ConversationEventsData names no variants")


@dataclass(frozen=True)
class _Cleaning:
    """How one pass's schemas are turned back into plain JSON Schema (module docstring)."""

    inline: dict[str, Json]
    # The references' start: `#/components/schemas/Mistral.` (or `Mistral.Request.`).
    base: str
    # Request bodies: the SDK's open enums (a known value, or any string, so that it parses a
    # value Mistral adds later) are closed to their known values, which is what Mistral takes.
    closed: bool

    def clean(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        target = node.get("$ref")
        if isinstance(target, str):
            name = target.removeprefix(self.base)
            if name in self.inline:
                return self.clean(self.inline[name])
            if name.startswith("Unknown"):
                return {"type": "object", "description": "A variant this SDK does not know."}
            if name == "File":
                # A multipart part holding a file's bytes (the SDK's File model is its parts).
                return {"type": "string", "format": "binary"}
        cleaned = {
            key: self.clean(value)
            for key, value in node.items()
            if key != "title" and not (key == "default" and value == _UNSET_DEFAULT)
        }
        _require_tag(cleaned)
        for union in ("anyOf", "oneOf"):
            if union in cleaned:
                options = [o for o in cleaned[union] if o != {"$ref": self.base + "Unset"}]
                options = _unique(_flatten(union, options))
                if self.closed:
                    options = _closed(options)
                if len(options) == 1 and len(cleaned) == 1:
                    return options[0]
                cleaned[union] = options
        return cleaned


def _closed(options: list[Any]) -> list[Any]:
    """A union's options without the plain string that opens an enum of strings beside it."""
    known = any(
        isinstance(o, dict) and o.get("type") == "string" and ("enum" in o or "const" in o)
        for o in options
    )
    return [o for o in options if not (known and o == {"type": "string"})] if known else options


def _require_tag(node: Json) -> None:
    """Make an object's tag required and not null (see the module docstring)."""
    tag = node.get("properties", {}).get("type")
    if not isinstance(tag, dict) or "default" not in tag:
        return
    options = [o for o in tag.get("anyOf", [tag]) if o != {"type": "null"}]
    constant = {k: v for k, v in options[0].items() if k != "default"} if options else {}
    if len(options) != 1 or constant.get("const") != tag["default"]:
        return
    node["properties"] = {**node["properties"], "type": constant}
    node["required"] = [*node.get("required", []), "type"]


def _flatten(union: str, options: list[Any]) -> list[Any]:
    """`anyOf: [anyOf: [a, b], c]` is `anyOf: [a, b, c]` (the SDK's wrappers nest them)."""
    flat: list[Any] = []
    for option in options:
        if isinstance(option, dict) and set(option) == {union}:
            flat.extend(option[union])
        else:
            flat.append(option)
    return flat


def _unique(options: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for option in options:
        if option not in seen:
            seen.append(option)
    return seen

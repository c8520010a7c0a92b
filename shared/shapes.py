"""JSON Schema building blocks for the wire shapes each module documents beside its code.

A module that answers or takes a JSON body of the gateway's own (keys, tenants, usage,
audit, batches, stored conversations, whoami, health) says what it looks like in an
`openapi_schemas()` function built from these; the OpenAPI document (`shared.openapi`)
collects them. The functions run only when the document is built, never at a cold start.
This module imports nothing of the gateway's, so any module may use it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANY_OBJECT",
    "BOOL",
    "INT",
    "INT32_MAX",
    "NUMBER",
    "STRING",
    "TIME",
    "Json",
    "const",
    "enum",
    "nullable",
    "obj",
    "page",
    "ref",
]

Json = dict[str, Any]

INT32_MAX = 2_147_483_647
STRING: Json = {"type": "string"}
INT: Json = {"type": "integer"}
NUMBER: Json = {"type": "number"}
BOOL: Json = {"type": "boolean"}
TIME: Json = {"type": "string", "format": "date-time"}
ANY_OBJECT: Json = {"type": "object"}


def ref(name: str) -> Json:
    """A reference to the document's component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Json) -> Json:
    """`schema` or JSON null."""
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "description", "format", "minimum"}:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: Json, required: tuple[str, ...] = (), **extra: Any) -> Json:
    schema: Json = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def const(value: str) -> Json:
    return {"type": "string", "const": value}


def enum(*values: str) -> Json:
    return {"type": "string", "enum": list(values)}


def page(item: str, cursor: str = "next_cursor") -> Json:
    """A page of the gateway's lists: `{object: "list", data: [item], next_cursor}`."""
    return obj(
        {
            "object": const("list"),
            "data": {"type": "array", "items": ref(item)},
            cursor: {
                "type": ["string", "null"],
                "description": "Pass it back as the next request's cursor; null on the last page.",
            },
        },
        ("object", "data", cursor),
    )

"""The gateway's OpenAPI 3.1 document, derived from the route table, and the route serving it.

    document()        the document, as a fresh dict
    document_bytes()  its JSON, built once per process
    build(table, specs)  the document of any route table (what tests check drift with)

How the pieces fit:

    _mistral      Mistral's shapes, requests and responses, from the SDK's pydantic models
    _schemas      the stream's framing and the error bodies, and the gateway's own routes'
                  shapes collected from the modules that serve them (`openapi_schemas()`)
    _operations   per operation id (= `Route.operation`): summary, query and header
                  parameters, success responses, particular errors; a Mistral route
                  needs no entry (it is derived from `shared.surface`'s SDK operation)
    _build        one path item per route of `shared.http.routes.ROUTES`; security and roles from
                  `shared.tenancy.auth`; errors every operation of a kind shares derived
                  from the route; Mistral bodies with the gateway's `body_rules` folded in

Because `_build` walks the route table, the document's methods and paths are the table's;
a gateway route whose operation has no `_operations` entry, or a Mistral route the SDK
has no operation for, fails the build (and tests/unit/test_openapi_document.py), so a new
route cannot ship undocumented.
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.openapi._build import build, is_authenticated, operation_id
    from shared.openapi._operations import OPERATIONS, Operation

__all__ = [
    "OPERATIONS",
    "Operation",
    "build",
    "document",
    "document_bytes",
    "is_authenticated",
    "operation_id",
]

# The builder and its tables (with `shared.tenancy.usage` and `shared.tenancy.keyadmin`) are
# needed only
# when the document is asked for: the history function serves it, and must not import
# them at cold start. They load on first use, through the module `__getattr__` (PEP 562);
# the import system's per-module locks make a concurrent first use safe.
_LAZY = {
    "build": "shared.openapi._build",
    "is_authenticated": "shared.openapi._build",
    "operation_id": "shared.openapi._build",
    "OPERATIONS": "shared.openapi._operations",
    "Operation": "shared.openapi._operations",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


@cache
def document_bytes() -> bytes:
    """The document as compact JSON, built on first use and kept for the process."""
    from shared.openapi._build import build

    return json.dumps(build(), separators=(",", ":")).encode()


def document() -> dict[str, Any]:
    """The document as data; a copy, so callers may change it freely."""
    parsed: dict[str, Any] = json.loads(document_bytes())
    return parsed

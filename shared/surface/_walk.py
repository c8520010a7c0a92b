"""Read every HTTP operation out of the installed `mistralai` SDK.

The SDK is generated: each operation is a method of a sub-SDK object reached from
`Mistral(...)` (`client.chat.complete`, `client.beta.libraries.documents.upload`),
and its body names the HTTP method, the path, Mistral's operation id and the
pydantic models it sends and parses. This walks the live object graph, as a
program using the SDK would reach it, and reads those names from each method's
source. Only the generator and the tests import this (it imports the SDK).
"""

from __future__ import annotations

import inspect
import re
from collections import deque
from typing import Any

_METHOD_PATH = re.compile(r'method="(\w+)",\s*path="([^"]+)"')
_OPERATION_ID = re.compile(r'operation_id="([^"]+)"')
# serialize_request_body(request.body, False, False, "json", models.CreateFileRequest)
_REQUEST_MODEL = re.compile(r"serialize_request_body\(\s*[\w.]+,.*?models\.(\w+)", re.S)
_REQUEST_KIND = re.compile(r'serialize_request_body\(\s*[\w.]+,\s*\w+,\s*\w+,\s*"(\w+)"', re.S)
_RESPONSE_MODEL = re.compile(r"unmarshal_json_response\(\s*(?:[^,]*?)models\.(\w+)")
# unmarshal_json_response(List[models.Agent], http_res): the answer is a JSON array of them.
# A JSON answer the SDK parses as no model: a bare string (a signed URL) or anything.
_RESPONSE_SCALAR = re.compile(r"unmarshal_json_response\(\s*(str|Any),")
_RESPONSE_LIST = re.compile(r"unmarshal_json_response\(\s*List\[")
# The status the SDK reads its answer from: `utils.match_response(http_res, "201", ...)`.
_SUCCESS = re.compile(r'match_response\(\s*http_res,\s*"(2\d\d)"')
# The `data:` that ends a stream (chat, fim and agents completions send `[DONE]`).
_SENTINEL = re.compile(r'sentinel="([^"]+)"')
_QUERY_MODEL = re.compile(r"request = models\.(\w+)\(")

# Back references between sub-SDKs: following them would only revisit.
_SKIP = frozenset({"parent_ref"})


def _describe(name: str, method: Any) -> dict[str, Any] | None:
    try:
        source = inspect.getsource(method)
    except (OSError, TypeError):
        return None
    found = _METHOD_PATH.search(source)
    if found is None:
        return None
    verb, sdk_path = found.groups()
    # The SDK tells two operations on one path apart with a fragment (`#stream`).
    path, _, variant = sdk_path.partition("#")
    operation_id = _OPERATION_ID.search(source)
    body = _REQUEST_MODEL.search(source)
    kind = _REQUEST_KIND.search(source)
    params = _QUERY_MODEL.search(source)
    responses = _RESPONSE_MODEL.findall(source)
    streams = "EventStream" in source
    return {
        "name": name,
        "method": verb,
        "path": path,
        "variant": variant or None,
        "operation_id": operation_id.group(1) if operation_id else None,
        "request_model": body.group(1) if body else None,
        "request_kind": kind.group(1) if kind else None,
        "parameters_model": params.group(1) if params else None,
        "response_model": responses[0] if responses else None,
        "response_list": bool(_RESPONSE_LIST.search(source)),
        "response_scalar": scalar.group(1) if (scalar := _RESPONSE_SCALAR.search(source)) else None,
        "success_status": int(success.group(1)) if (success := _SUCCESS.search(source)) else 200,
        "streams": streams,
        "stream_sentinel": end.group(1) if (end := _SENTINEL.search(source)) else None,
    }


def walk() -> list[dict[str, Any]]:
    """Every operation of `Mistral(...)`, breadth first, each under its shortest name."""
    from mistralai.client import Mistral
    from mistralai.client.basesdk import BaseSDK

    client = Mistral(api_key="not-used")
    seen: set[int] = {id(client)}
    queue: deque[tuple[str, Any]] = deque([("", client)])
    found: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    while queue:
        prefix, sdk = queue.popleft()
        for attr in sorted(dir(sdk)):
            if attr.startswith("_") or attr.endswith("_async") or attr in _SKIP:
                continue
            try:
                value = getattr(sdk, attr)
            except ImportError:
                # An optional extra (`audio.realtime` needs `websockets`): a websocket
                # client, not an HTTP operation.
                continue
            if isinstance(value, BaseSDK):
                if id(value) not in seen:
                    seen.add(id(value))
                    queue.append((prefix + attr + ".", value))
                continue
            if not inspect.ismethod(value):
                continue
            described = _describe(prefix + attr, value)
            if described is None:
                continue
            key = (described["method"], described["path"], described["variant"])
            # Two names for one operation (`events` and `workflows.events`): keep the first.
            found.setdefault(key, described)
            found[key].setdefault("aliases", [])
            if found[key]["name"] != described["name"]:
                found[key]["aliases"].append(described["name"])
    return sorted(found.values(), key=lambda op: op["name"])


def sdk_version() -> str:
    from mistralai.client._version import __version__

    return str(__version__)

"""Request validation with pydantic-style 422 answers, written by hand to keep requests cheap.

Only what matters for a faithful stand-in is checked: required fields, JSON types, the enums the
SDK knows, and the shapes of entries and tools. Unknown fields are ignored, like Mistral does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ._wire import ApiError, unprocessable

Loc = tuple[str | int, ...]
Query = Mapping[str, list[str]]
# field name -> (kind, required); optional fields also accept JSON null.
Fields = dict[str, tuple[str, bool]]

_ABSENT = object()
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _is_int(value: Any) -> bool:
    # Mistral's pydantic models read 5.0 as 5 (lax mode), and so does the stand-in.
    whole = isinstance(value, float) and value.is_integer()
    return whole or (isinstance(value, int) and not isinstance(value, bool))


_KINDS: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "str": (lambda v: isinstance(v, str), "Input should be a valid string", "string_type"),
    "bool": (lambda v: isinstance(v, bool), "Input should be a valid boolean", "bool_type"),
    "int": (_is_int, "Input should be a valid integer", "int_type"),
    "object": (lambda v: isinstance(v, dict), "Input should be a valid dictionary", "dict_type"),
    "list": (lambda v: isinstance(v, list), "Input should be a valid list", "list_type"),
    "int|str": (
        lambda v: _is_int(v) or isinstance(v, str),
        "Input should be a valid integer or string",
        "union_type",
    ),
    "str|list": (
        lambda v: isinstance(v, str | list),
        "Input should be a valid string or list",
        "union_type",
    ),
    "str|object": (
        lambda v: isinstance(v, str | dict),
        "Input should be a valid string or dictionary",
        "union_type",
    ),
}

_START: Fields = {
    "inputs": ("str|list", True),
    "stream": ("bool", False),
    "store": ("bool", False),
    "handoff_execution": ("str", False),
    "instructions": ("str", False),
    "tools": ("list", False),
    "completion_args": ("object", False),
    "guardrails": ("list", False),
    "name": ("str", False),
    "description": ("str", False),
    "metadata": ("object", False),
    "agent_id": ("str", False),
    "agent_version": ("int|str", False),
    "model": ("str", False),
}
_APPEND: Fields = {
    "inputs": ("str|list", False),
    "stream": ("bool", False),
    "store": ("bool", False),
    "handoff_execution": ("str", False),
    "completion_args": ("object", False),
    "tool_confirmations": ("list", False),
}
_RESTART: Fields = {
    "from_entry_id": ("str", True),
    "inputs": ("str|list", False),
    "stream": ("bool", False),
    "store": ("bool", False),
    "handoff_execution": ("str", False),
    "completion_args": ("object", False),
    "guardrails": ("list", False),
    "metadata": ("object", False),
    "agent_version": ("int|str", False),
}
_AGENT_OPTIONAL: Fields = {
    "instructions": ("str", False),
    "tools": ("list", False),
    "completion_args": ("object", False),
    "guardrails": ("list", False),
    "description": ("str", False),
    "handoffs": ("list", False),
    "metadata": ("object", False),
    "version_message": ("str", False),
}
_CREATE_AGENT: Fields = {"model": ("str", True), "name": ("str", True), **_AGENT_OPTIONAL}
_UPDATE_AGENT: Fields = {
    "model": ("str", False),
    "name": ("str", False),
    "deployment_chat": ("bool", False),
    **_AGENT_OPTIONAL,
}
_COMPLETION_ARGS: Fields = {
    "max_tokens": ("int", False),
    "random_seed": ("int", False),
    "tool_choice": ("str", False),
}
_ENTRIES: dict[str, Fields] = {
    "message.input": {
        "role": ("str", True),
        "content": ("str|list", True),
        "prefix": ("bool", False),
    },
    "message.output": {"content": ("str|list", True)},
    "function.call": {
        "tool_call_id": ("str", True),
        "name": ("str", True),
        "arguments": ("str|object", True),
    },
    "function.result": {"tool_call_id": ("str", True), "result": ("str", True)},
    "tool.execution": {"name": ("str", True), "arguments": ("str", True)},
    "agent.handoff": {
        "previous_agent_id": ("str", True),
        "previous_agent_name": ("str", True),
        "next_agent_id": ("str", True),
        "next_agent_name": ("str", True),
    },
}
_TOOLS: dict[str, Fields] = {
    "function": {"function": ("object", True)},
    "web_search": {},
    "web_search_premium": {},
    "code_interpreter": {},
    "image_generation": {},
    "document_library": {"library_ids": ("list", True)},
    "connector": {"connector_id": ("str", True)},
}
_FUNCTION: Fields = {"name": ("str", True), "parameters": ("object", True)}
_CONFIRMATION: Fields = {"tool_call_id": ("str", True), "confirmation": ("str", True)}


class Problems:
    """Collects every error of one request so the 422 lists them all, as FastAPI does."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, loc: Loc, msg: str, kind: str, value: Any = _ABSENT) -> None:
        item: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": kind}
        if value is not _ABSENT:
            item["input"] = value
        self.items.append(item)

    def raise_if_any(self) -> None:
        if self.items:
            raise unprocessable(self.items)


def _check_object(value: Any, fields: Fields, loc: Loc, problems: Problems) -> bool:
    """Type-checks `fields` of `value`; False (and a problem) when `value` is not an object."""
    if not isinstance(value, dict):
        problems.add(
            loc,
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
            value,
        )
        return False
    for name, (kind, required) in fields.items():
        if name not in value:
            if required:
                problems.add((*loc, name), "Field required", "missing", value)
            continue
        item = value[name]
        if item is None and not required:
            continue
        check, msg, error_type = _KINDS[kind]
        if not check(item):
            problems.add((*loc, name), msg, error_type, item)
    return True


def _check_enum(
    value: Mapping[str, Any], name: str, allowed: tuple[str, ...], loc: Loc, problems: Problems
) -> None:
    item = value.get(name)
    if isinstance(item, str) and item not in allowed:
        expected = " or ".join(f"'{a}'" for a in allowed)
        problems.add((*loc, name), f"Input should be {expected}", "enum", item)


def _check_tagged(
    value: Any, variants: Mapping[str, Fields], default: str | None, loc: Loc, problems: Problems
) -> None:
    """Checks one member of a union discriminated by `type`."""
    if not isinstance(value, dict):
        _check_object(value, {}, loc, problems)
        return
    tag = value.get("type", default)
    if not isinstance(tag, str) or tag not in variants:
        expected = ", ".join(f"'{v}'" for v in variants)
        problems.add(
            (*loc, "type"),
            f"Input tag {tag!r} found using 'type' does not match any of the expected tags: "
            + expected,
            "union_tag_invalid",
            tag,
        )
        return
    _check_object(value, variants[tag], loc, problems)


def _check_inputs(inputs: Any, loc: Loc, problems: Problems) -> None:
    if not isinstance(inputs, list):
        return
    for index, entry in enumerate(inputs):
        entry_loc = (*loc, index)
        # A bare {"role", "content"} object is a message.input, as the SDK's defaults make it.
        _check_tagged(entry, _ENTRIES, "message.input", entry_loc, problems)
        if isinstance(entry, dict) and entry.get("type", "message.input") == "message.input":
            _check_enum(entry, "role", ("user", "assistant"), entry_loc, problems)
            content = entry.get("content")
            if isinstance(content, list):
                for chunk_index, chunk in enumerate(content):
                    _check_object(
                        chunk,
                        {"type": ("str", True)},
                        (*entry_loc, "content", chunk_index),
                        problems,
                    )


def _check_tools(tools: Any, loc: Loc, problems: Problems) -> None:
    if not isinstance(tools, list):
        return
    for index, tool in enumerate(tools):
        _check_tagged(tool, _TOOLS, None, (*loc, index), problems)
        if isinstance(tool, dict) and tool.get("type") == "function":
            function = tool.get("function")
            if isinstance(function, dict):
                _check_object(function, _FUNCTION, (*loc, index, "function"), problems)


def _check_completion_args(args: Any, loc: Loc, problems: Problems) -> None:
    if not isinstance(args, dict):
        return
    _check_object(args, _COMPLETION_ARGS, loc, problems)
    max_tokens = args.get("max_tokens")
    if _is_int(max_tokens) and max_tokens < 0:
        problems.add(
            (*loc, "max_tokens"),
            "Input should be greater than or equal to 0",
            "greater_than_equal",
            max_tokens,
        )


def _check_turn(body: Mapping[str, Any], problems: Problems) -> None:
    """The parts start, append and restart share."""
    _check_inputs(body.get("inputs"), ("body", "inputs"), problems)
    _check_completion_args(body.get("completion_args"), ("body", "completion_args"), problems)
    _check_enum(body, "handoff_execution", ("client", "server"), ("body",), problems)


def start_request(body: Any) -> dict[str, Any]:
    problems = Problems()
    if _check_object(body, _START, ("body",), problems):
        _check_turn(body, problems)
        _check_tools(body.get("tools"), ("body", "tools"), problems)
        # The SDK checks nothing here; Mistral needs exactly one way to pick what answers.
        if not problems.items and (body.get("model") is None) == (body.get("agent_id") is None):
            problems.add(
                ("body",),
                "Value error, exactly one of 'model' or 'agent_id' must be provided",
                "value_error",
                body,
            )
    problems.raise_if_any()
    return dict(body)


def append_request(body: Any) -> dict[str, Any]:
    problems = Problems()
    if _check_object(body, _APPEND, ("body",), problems):
        _check_turn(body, problems)
        confirmations = body.get("tool_confirmations")
        for index, item in enumerate(confirmations if isinstance(confirmations, list) else []):
            loc = ("body", "tool_confirmations", index)
            if _check_object(item, _CONFIRMATION, loc, problems):
                _check_enum(item, "confirmation", ("allow", "deny"), loc, problems)
        if body.get("inputs") is None and not confirmations:
            problems.add(("body", "inputs"), "Field required", "missing", body)
    problems.raise_if_any()
    return dict(body)


def restart_request(body: Any) -> dict[str, Any]:
    problems = Problems()
    if _check_object(body, _RESTART, ("body",), problems):
        _check_turn(body, problems)
    problems.raise_if_any()
    return dict(body)


def agent_request(body: Any, *, create: bool) -> dict[str, Any]:
    problems = Problems()
    if _check_object(body, _CREATE_AGENT if create else _UPDATE_AGENT, ("body",), problems):
        _check_tools(body.get("tools"), ("body", "tools"), problems)
        _check_completion_args(body.get("completion_args"), ("body", "completion_args"), problems)
        handoffs = body.get("handoffs")
        for index, item in enumerate(handoffs if isinstance(handoffs, list) else []):
            if not isinstance(item, str):
                problems.add(
                    ("body", "handoffs", index),
                    "Input should be a valid string",
                    "string_type",
                    item,
                )
    problems.raise_if_any()
    return dict(body)


def _first(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _invalid(loc: Loc, msg: str, kind: str, value: Any) -> ApiError:
    """A 422 for one bad query or path parameter."""
    problems = Problems()
    problems.add(loc, msg, kind, value)
    return unprocessable(problems.items)


def _int(raw: str, loc: Loc, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        msg = "Input should be a valid integer, unable to parse string as an integer"
        raise _invalid(loc, msg, "int_parsing", raw) from None
    if value < minimum:
        msg = f"Input should be greater than or equal to {minimum}"
        raise _invalid(loc, msg, "greater_than_equal", raw)
    return value


def path_int(raw: str, name: str) -> int:
    return _int(raw, ("path", name), 0)


def query_int(query: Query, name: str, default: int | None, minimum: int = 0) -> int:
    """An integer query parameter; `default` None makes it required."""
    raw = _first(query, name)
    if raw is not None:
        return _int(raw, ("query", name), minimum)
    if default is None:
        raise _invalid(("query", name), "Field required", "missing", None)
    return default


def query_str(query: Query, name: str, *, required: bool = False) -> str | None:
    value = _first(query, name)
    if value is None and required:
        raise _invalid(("query", name), "Field required", "missing", None)
    return value


def query_bool(query: Query, name: str) -> bool | None:
    raw = _first(query, name)
    if raw is None:
        return None
    if raw.lower() in _BOOLS:
        return _BOOLS[raw.lower()]
    msg = "Input should be a valid boolean, unable to interpret input"
    raise _invalid(("query", name), msg, "bool_parsing", raw)


def query_metadata(query: Query) -> dict[str, Any] | None:
    """The JSON `metadata` filter. Anything but a JSON object means no filter: the SDK sends the
    JSON of its UNSET sentinel whenever the caller gives no metadata."""
    raw = _first(query, "metadata")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

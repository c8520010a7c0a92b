"""Helpers the tests share: keys for each role, and each function's real app."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import flask
import functions_framework

from shared.container import Container
from shared.errors import CODES, ERROR_CATEGORIES
from shared.keys import NewKey, create_key

ROOT = Path(__file__).resolve().parent.parent

# A function tool, as the tests that drive tool calls through the stand-in declare it.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@cache
def function_app(function: str) -> flask.Flask:
    """The function's Flask app, built by functions-framework from its main.py."""
    source = ROOT / "functions" / function / "main.py"
    return functions_framework.create_app(target="handle", source=str(source))


def client(function: str) -> Any:
    return function_app(function).test_client()


def make_key(
    container: Container, role: str = "user", owner: str = "tenant-a", **limits: int | None
) -> NewKey:
    with container.pool.transaction() as conn:
        return create_key(conn, owner_id=owner, name=f"{role} key", role=role, limits=limits)


def bearer(key: NewKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret}"}


def error_code(body: Any) -> str:
    """The `code` of an error the gateway made, once its body is Mistral's error shape."""
    assert isinstance(body, dict), body
    assert body["object"] == "error", body
    assert body["type"] in ERROR_CATEGORIES, body
    assert body["code"] in CODES, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert body["param"] is None, body
    assert isinstance(body["code"], str), body
    return body["code"]

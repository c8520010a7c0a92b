"""Helpers the tests share: keys for each role, and each function's real app."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import flask
import functions_framework
from werkzeug.serving import make_server

from shared.container import Container
from shared.errors import CODES, ERROR_CATEGORIES
from shared.http import routes
from shared.tenancy.keys import NewKey, create_key

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
    """A key of `owner` (made, with its tenant, if need be). A key only narrows its tenant's
    limits, so a request rate above the tenant's is first given to the tenant, as an
    operator would."""
    with container.pool.transaction() as conn:
        key = create_key(conn, owner_id=owner, name=f"{role} key", role=role, limits=limits)
        requests, window = limits.get("rate_limit_requests"), limits.get("rate_limit_window")
        if requests is not None:
            tenant = conn.one(
                "SELECT rate_limit_requests AS r, rate_limit_window AS w FROM tenants"
                " WHERE id = :id FOR UPDATE",
                id=owner,
            )
            assert tenant is not None
            current = (
                tenant["r"] or container.settings.rate_limit_requests,
                tenant["w"] or container.settings.rate_limit_window,
            )
            asked = (requests, window or current[1])
            if asked[0] * current[1] > current[0] * asked[1]:
                conn.run(
                    "UPDATE tenants SET rate_limit_requests = :r, rate_limit_window = :w"
                    " WHERE id = :id",
                    r=asked[0],
                    w=asked[1],
                    id=owner,
                )
        return key


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
    assert body["param"] is None or isinstance(body["param"], str), body
    assert isinstance(body["code"], str), body
    return body["code"]


def upload_batch_file(key: NewKey, lines: bytes, name: str = "in.jsonl") -> str:
    """`lines` uploaded through the admin function as a batch input file of `key`'s
    tenant; its id."""
    uploaded = client("admin").post(
        "/v1/files",
        data={"file": (io.BytesIO(lines), name), "purpose": "batch"},
        content_type="multipart/form-data",
        headers=bearer(key),
    )
    assert uploaded.status_code == 200, uploaded.get_data()
    return str(uploaded.get_json()["id"])


def create_batch_job(key: NewKey, file_id: str, **fields: object) -> Any:
    """The admin function's answer to a batch job of `key`'s tenant over `file_id`: a chat
    job of mistral-small-latest unless `fields` say otherwise."""
    job = {
        "input_files": [file_id],
        "endpoint": "/v1/chat/completions",
        "model": "mistral-small-latest",
        **fields,
    }
    return client("admin").post("/v1/batch/jobs", json=job, headers=bearer(key))


def batch_job(key: NewKey, lines: bytes, **fields: object) -> str:
    """A batch job of `key`'s tenant over one uploaded file of `lines`; its id."""
    created = create_batch_job(key, upload_batch_file(key, lines), **fields)
    assert created.status_code == 200, created.get_data()
    return str(created.get_json()["id"])


def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
    """The four functions' real apps as one WSGI app: each request to its function's, as
    the load balancer sends it."""
    found = routes.match(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"))
    function = found.route.function if found.route else "history"
    return function_app(function)(environ, start_response)


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` (a WSGI app: one function's, or `dispatch`) behind a local HTTP server; its
    URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()

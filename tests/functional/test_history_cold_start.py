"""The history function's cold start loads only what its read path needs.

Issue 11 gives history the tightest cold-start target (700 ms): it never calls
Mistral, so an instance must not pay for the SDK, the batch or metrics clients,
or the OpenAPI builder before its first answer. A fresh interpreter loads
`functions/history/main.py` exactly as functions-framework does, answers one real
request against the test database and Valkey, and reports every module it holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from shared.config import Settings
from shared.container import Container
from tests.support import ROOT, make_key

pytestmark = pytest.mark.slow

# Modules the history function does not load at cold start, and what each is.
NEVER_LOADED = {
    "mistralai": "the Mistral SDK (its models are read only to build the document)",
    "shared.mistral": "the gateway's Mistral client",
    "httpx": "the SDK's HTTP client",
    "jsonschema": "batch message validation",
    "shared.batch": "the batch function's logic",
    "google.cloud.sql": "the Cloud SQL connector (this test connects with DATABASE_URL)",
    "shared.openapi._build": "the OpenAPI builder, until the document is asked for",
    "shared.openapi._mistral": "Mistral's shapes from the SDK, until the document is asked for",
    "shared.surface": "the SDK's operations (403 not_exposed), until a request no route serves",
}

# Runs in the fresh interpreter. argv: function source, key; settings come from the env.
_PROBE = r"""
import json, sys

import functions_framework

app = functions_framework.create_app(target="handle", source=sys.argv[1])
client = app.test_client()
imported = sorted(sys.modules)
key = {"Authorization": "Bearer " + sys.argv[2]}
first = client.get("/v1/conversations?page_size=20", headers=key)
answered = sorted(sys.modules)
document = client.get("/gateway/v1/openapi.json")
print(json.dumps({
    "imported": imported,
    "first_status": first.status_code,
    "answered": answered,
    "document_status": document.status_code,
    "document_paths": len(document.get_json()["paths"]),
    "after_document": sorted(sys.modules),
}))
"""


def _loaded(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


@pytest.fixture(scope="module")
def cold_start(base_settings: Settings, session_container: Container) -> dict[str, Any]:
    key = make_key(session_container, owner="cold-start")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "ENVIRONMENT": "test",
        "DATABASE_URL": base_settings.database_url,
        "REDIS_URL": base_settings.redis_url,
        "MISTRAL_API_KEY": base_settings.mistral_api_key,
        "MISTRAL_SERVER_URL": base_settings.mistral_server_url,
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "functions" / "history" / "main.py"), key.secret],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_first_request_is_answered(cold_start: dict[str, Any]) -> None:
    """The probe's first request is a real, successful read (so the graph below is real)."""
    assert cold_start["first_status"] == 200


@pytest.mark.parametrize("module", sorted(NEVER_LOADED))
def test_cold_start_never_loads(cold_start: dict[str, Any], module: str) -> None:
    """Neither loading the function nor answering its first request imports `module`."""
    assert not _loaded(cold_start["imported"], module), NEVER_LOADED[module]
    assert not _loaded(cold_start["answered"], module), NEVER_LOADED[module]


def test_logging_library_loads_when_logging_is_configured(cold_start: dict[str, Any]) -> None:
    """google-cloud-logging's handler is built by the first request, not by the import."""
    assert not _loaded(cold_start["imported"], "google.cloud.logging_v2")
    assert "google.cloud.logging_v2.handlers.structured_log" in cold_start["answered"]


def test_openapi_document_builds_on_first_use(cold_start: dict[str, Any]) -> None:
    """The deferred builder still serves the whole document when it is asked for."""
    assert cold_start["document_status"] == 200
    assert cold_start["document_paths"] > 10
    assert "shared.openapi._build" in cold_start["after_document"]

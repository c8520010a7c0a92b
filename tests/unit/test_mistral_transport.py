"""The SDK internals and protocols shared.mistral is pinned to: a new SDK release fails here."""

from __future__ import annotations

import pytest
from mistralai.client.httpclient import HttpClient

from shared.config import Settings
from shared.mistral import build_sdk, check_sdk
from shared.mistral._http import LeanHttpClient
from shared.mistral._transport import SdkTransport


def test_the_installed_sdk_is_the_one_the_transport_was_written_for() -> None:
    """Version and the signatures of `_build_request` and `do_request` are the pinned ones."""
    check_sdk()


def test_the_lean_client_implements_the_sdks_http_client_protocol() -> None:
    """`Mistral(client=...)` asserts this protocol; the lean client must keep satisfying it."""
    assert issubclass(LeanHttpClient, HttpClient)


def test_lazy_sdk_names_are_bound_to_the_same_objects() -> None:
    """After the transport is built, `mistralai.client.utils`'s lazy names are plain module
    attributes, each the object its source module defines."""
    import importlib

    from mistralai.client import utils

    from shared.mistral._transport import _resolve_lazy_names

    _resolve_lazy_names()
    names = utils._dynamic_imports
    assert names
    assert all(name in vars(utils) for name in names)
    for name, source in names.items():
        module = importlib.import_module(source, utils.__package__)
        assert getattr(utils, name) is getattr(module, name)


def _transport() -> SdkTransport:
    settings = Settings(mistral_api_key="sk-test", mistral_server_url="http://mistral.test:8080")
    return SdkTransport(build_sdk(settings, 4))


@pytest.mark.parametrize(
    ("method", "path", "body", "accept"),
    [
        ("POST", "/v1/conversations", b'{"inputs": "hi", "model": "m"}', "application/json"),
        ("POST", "/v1/conversations", b'{"inputs": "hi", "stream": true}', "text/event-stream"),
        ("GET", "/v1/conversations/conv_1/history", None, "application/json"),
        ("DELETE", "/v1/agents/ag_1", None, "application/json"),
        ("PATCH", "/v1/agents/ag_1", b'{"name": "x"}', "application/json"),
        ("POST", "/v1/conversations/conv_1/restart", b"", "application/json"),
        ("PUT", "/v1/agents/ag_1/version", None, "application/json"),
        ("DELETE", "/v1/files/f_1", b"", "application/json"),
    ],
)
def test_a_request_from_the_sdks_headers_equals_the_one_the_sdk_builds(
    method: str, path: str, body: bytes | None, accept: str
) -> None:
    """Built from the headers the SDK gave the first request of its kind, a request has the
    same method, URL, headers (names, values and order) and body as the SDK builds it."""
    transport = _transport()
    for _ in range(2):  # the first builds the headers through the SDK, then they are reused
        quick = transport.request(method, path, body, accept, "application/json")
        full = transport._build(method, path, body, accept, "application/json")
        assert (quick.method, str(quick.url), quick.headers.raw, quick.read()) == (
            full.method,
            str(full.url),
            full.headers.raw,
            full.read(),
        )
    assert any(name.lower() == b"authorization" for name, _ in quick.headers.raw)


def test_a_changing_security_is_asked_on_every_request() -> None:
    """With a callable `security` (a token that may change) no headers are kept: each
    request carries what the callable gives at the time."""
    from mistralai.client import models

    transport = _transport()
    tokens = iter(["first", "second"])
    config = transport._config
    saved = config.security
    config.security = lambda: models.Security(api_key=next(tokens))
    try:
        seen = [
            transport.request(
                "GET", "/v1/models", None, "application/json", "application/json"
            ).headers["authorization"]
            for _ in range(2)
        ]
    finally:
        config.security = saved
    assert seen == ["Bearer first", "Bearer second"]

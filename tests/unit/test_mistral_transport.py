"""The SDK internals and protocols shared.mistral is pinned to: a new SDK release fails here."""

from __future__ import annotations

from mistralai.client.httpclient import HttpClient

from shared.mistral import check_sdk
from shared.mistral._http import LeanHttpClient


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

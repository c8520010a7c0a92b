"""The SDK's request plumbing, without its per-call pydantic work.

The gateway relays bodies it did not write, so it cannot go through the SDK's
typed methods: they rebuild every body as pydantic models (dropping fields
the SDK does not know, and spending most of a call's CPU building a model per
marshal in `mistralai.client.utils.serializers`). Instead the gateway calls
the two methods every generated operation ends in, `BaseSDK._build_request`
and `BaseSDK.do_request`, with the caller's bytes as the body. Headers,
security, user agent, hooks and the HTTP client stay the SDK's own.

These are private methods of a generated SDK: this module is pinned to the
version it was written against, and `tests/unit/test_mistral_transport.py`
fails loudly if the version or the methods' signatures change.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx2

SDK_VERSION = "3.7.0"
# Parameters this module passes by name; a release that renames one must fail the test.
BUILD_REQUEST_PARAMS = (
    "method",
    "path",
    "base_url",
    "url_variables",
    "request",
    "request_body_required",
    "request_has_path_params",
    "request_has_query_params",
    "user_agent_header",
    "accept_header_value",
    "security",
    "timeout_ms",
    "get_serialized_body",
    "url_override",
)
DO_REQUEST_PARAMS = ("hook_ctx", "request", "is_error_status_code", "stream", "retry_config")

__all__ = ["SDK_VERSION", "SdkTransport", "StreamedBody", "check_sdk"]

_JSON = "application/json"
# Headers httpx2 derives from a request's URL and body, not from the SDK.
_DERIVED_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})
# Methods httpx2 gives `Content-Length: 0` when they carry no body.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "QUERY"})
# Parsed URLs kept per path and query (bounded: cleared when full).
_URLS_KEPT = 1024


@dataclass(frozen=True)
class StreamedBody:
    """A request body sent as it is read (uploads), never held whole: `chunks` is consumed
    once, so a request carrying one is never sent twice. With `length` it goes with a
    Content-Length, else chunked."""

    content_type: str
    chunks: Iterable[bytes]
    length: int | None = None


def check_sdk() -> None:
    """Raise if the installed SDK is not the one this module was written for."""
    from mistralai.client import VERSION
    from mistralai.client.basesdk import BaseSDK

    if VERSION != SDK_VERSION:
        raise RuntimeError(f"shared.mistral is pinned to mistralai {SDK_VERSION}, found {VERSION}")
    for method, names in (
        (BaseSDK._build_request, BUILD_REQUEST_PARAMS),
        (BaseSDK.do_request, DO_REQUEST_PARAMS),
    ):
        params = inspect.signature(method).parameters
        missing = [n for n in names if n not in params]
        if missing:
            raise RuntimeError(f"mistralai {VERSION}: {method.__name__} lacks {missing}")


class SdkTransport:
    """Sends raw requests through one configured SDK instance (and its HTTP client, whose
    pool serves every request thread)."""

    def __init__(self, sdk: Any) -> None:
        from mistralai.client import models
        from mistralai.client._hooks import HookContext
        from mistralai.client.basesdk import BaseSDK
        from mistralai.client.utils import SerializedRequestBody

        check_sdk()
        _resolve_lazy_names()
        self.sdk = sdk
        self._base, self._config = _wrap(BaseSDK, sdk)
        self._body = SerializedRequestBody
        self._hook_context = HookContext
        self._security_model = models.Security
        self.base_url = str(self._base._get_url(None, None)).rstrip("/")
        # The headers the SDK builds for a JSON (or empty) request without a query, per
        # (method, accept, content type): see `_sdk_headers`.
        self._headers: dict[tuple[str, str, str | None], list[tuple[bytes, bytes]]] = {}
        self._host = (b"Host", b"")  # the SDK's Host header, read with the first headers
        self._urls: dict[str, httpx2.URL] = {}

    def send(
        self,
        operation_id: str,
        method: str,
        path_and_query: str,
        body: bytes | StreamedBody | None,
        *,
        accept: str = "application/json",
        stream: bool = False,
        content_type: str = "application/json",
    ) -> httpx2.Response:
        """One request, no retries (the caller decides), any status returned as is.
        `content_type` is sent as given (a multipart body keeps its boundary)."""
        base, config = self._base, self._config
        request = self.request(method, path_and_query, body, accept, content_type)
        if isinstance(body, StreamedBody) and body.length is not None:
            del request.headers["Transfer-Encoding"]
            request.headers["Content-Length"] = str(body.length)
        hook_ctx = self._hook_context(
            config=config,
            base_url=self.base_url,
            operation_id=operation_id,
            oauth2_scopes=None,
            security_source=config.security,
            tags=None,
            extensions=None,
        )
        response: httpx2.Response = base.do_request(
            hook_ctx=hook_ctx,
            request=request,
            is_error_status_code=lambda _status: False,
            stream=stream,
            retry_config=None,
        )
        return response

    def request(
        self,
        method: str,
        path_and_query: str,
        body: bytes | StreamedBody | None,
        accept: str,
        content_type: str,
    ) -> httpx2.Request:
        """The request the SDK would build: for a JSON (or empty) body without a query, from
        the headers it built for the first request of its kind (`_sdk_headers`)."""
        if (body is None or (isinstance(body, bytes) and content_type == _JSON)) and (
            "?" not in path_and_query
        ):
            headers = self._sdk_headers(method, accept, None if body is None else content_type)
            if headers is not None:
                return self._from_headers(method, path_and_query, headers, body or b"")
        return self._build(method, path_and_query, body, accept, content_type)

    def _from_headers(
        self, method: str, path_and_query: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> httpx2.Request:
        """The request httpx2 makes of `Request(method, url, headers=headers, content=body)`,
        given whole: its URL parsed once per path (the start's is always the same), and the
        headers it would derive put where it puts them (Host first; Content-Length last,
        or second when the body is empty and the method is one that carries a body), so it
        has nothing to work out per request."""
        url = self._urls.get(path_and_query)
        if url is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            url = self._urls[path_and_query] = httpx2.URL(self.base_url + path_and_query)
        if body:
            raw = [self._host, *headers, (b"Content-Length", b"%d" % len(body))]
        elif method in _BODY_METHODS:
            raw = [self._host, (b"Content-Length", b"0"), *headers]
        else:
            raw = [self._host, *headers]
        request = httpx2.Request(method, url, headers=raw, stream=httpx2.ByteStream(body))
        request.read()
        return request

    def _build(
        self,
        method: str,
        path_and_query: str,
        body: bytes | StreamedBody | None,
        accept: str,
        content_type: str,
    ) -> httpx2.Request:
        """The request as the SDK's generated operations build it."""
        content: Any = None
        if isinstance(body, StreamedBody):
            content = self._body(body.content_type, iter(body.chunks))
        elif body is not None:
            content = self._body(content_type, body)
        request: httpx2.Request = self._base._build_request(
            method=method,
            path="",
            base_url=None,
            url_variables=None,
            request=None,
            request_body_required=False,
            request_has_path_params=False,
            request_has_query_params=False,
            user_agent_header="user-agent",
            accept_header_value=accept,
            security=self._config.security,
            timeout_ms=None,  # the client's own Timeout: separate connect and read limits
            get_serialized_body=(lambda: content),
            url_override=self.base_url + path_and_query,
        )
        return request

    def _sdk_headers(
        self, method: str, accept: str, content_type: str | None
    ) -> list[tuple[bytes, bytes]] | None:
        """The headers `_build` gives a request of this kind, built by the SDK once.

        They depend on the method, the accept and content types and the SDK's
        configuration alone (security, user agent), so one request built through the SDK
        names them for every later one; a new request then differs from the SDK's only in
        its URL and body, whose own headers (Host, Content-Length) httpx2 derives as it
        does for the SDK's. A callable `security` (a token that may change) is asked on
        every request, so nothing is kept for it: None, and the caller builds in full.
        (bench/RESULTS.md, note 21, has what it saves.)
        """
        key = (method, accept, content_type)
        headers = self._headers.get(key)
        if headers is None:
            if callable(self._config.security):
                return None
            probe = self._build(
                method, "/", None if content_type is None else b"{}", accept, content_type or _JSON
            )
            headers = [
                (name, value)
                for name, value in probe.headers.raw
                if name.lower() not in _DERIVED_HEADERS
            ]
            self._host = next(h for h in probe.headers.raw if h[0].lower() == b"host")
            self._headers[key] = headers
        return headers


def _resolve_lazy_names() -> None:
    """Bind the SDK's lazily imported `mistralai.client.utils` names in the module itself.

    The module resolves each name through a module `__getattr__` that imports its source
    module (`importlib.import_module`) on every access and keeps nothing, and
    `_build_request` looks up several per call: 1.7% of a full start's CPU (py-spy).
    Bound once, each lookup is a plain attribute read of the same object.
    """
    from mistralai.client import utils

    for name in getattr(utils, "_dynamic_imports", {}):
        if name not in vars(utils):
            setattr(utils, name, getattr(utils, name))


def _wrap(base_sdk: Any, sdk: Any) -> tuple[Any, Any]:
    """The SDK's plumbing over the configured instance, and its configuration."""
    return base_sdk(sdk.sdk_configuration, parent_ref=sdk), sdk.sdk_configuration

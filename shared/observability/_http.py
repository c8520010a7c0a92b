"""What the log lines read of an HTTP request and response: structural types, so that
observability needs no web framework (flask's objects fit them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["HttpRequest", "HttpResponse"]


class _Headers(Protocol):
    def get(self, key: str, /) -> str | None: ...


class HttpRequest(Protocol):
    """An HTTP request as the access line and the log context read it."""

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> _Headers: ...

    @property
    def environ(self) -> Mapping[str, Any]: ...

    @property
    def remote_addr(self) -> str | None: ...

    @property
    def content_length(self) -> int | None: ...


class HttpResponse(Protocol):
    """An HTTP response as the access line reads it."""

    @property
    def status_code(self) -> int: ...

    def calculate_content_length(self) -> int | None: ...

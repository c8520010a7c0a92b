"""The gateway's HTTP API, with the standard library's client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["ApiError", "Client", "quote"]


class ApiError(Exception):
    """The gateway answered with an error: its status and message."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        if isinstance(body, dict) and isinstance(body.get("detail"), list):
            message = "; ".join(str(d.get("msg")) for d in body["detail"])
        super().__init__(f"HTTP {status}: {message or body}")
        self.status = status
        self.body = body


def _query(params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""


class Client:
    def __init__(self, url: str, key: str | None, timeout_s: float = 60) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s

    def call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own
            self.url + path + _query(params or {}), data=data, method=method
        )
        if self.key:
            request.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise ApiError(exc.code, parsed) from None
        return json.loads(raw) if raw else None

    def pages(
        self, path: str, params: Mapping[str, Any], limit: int | None = None
    ) -> Iterator[Any]:
        """Every item of a gateway list, page after keyset page (limit, cursor, next_cursor)."""
        cursor = None
        seen = 0
        while True:
            page = self.call("GET", path, params={**params, "cursor": cursor})
            for item in page["data"]:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return

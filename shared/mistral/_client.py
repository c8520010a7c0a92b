"""Calls to Mistral: timeouts, retries where they are safe, the circuit breaker,
and one table translating transport failures into the gateway's errors."""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx2

from shared.errors import (
    GatewayError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.limits.breaker import Breaker, BreakerState, Circuit
from shared.mistral._transport import SdkTransport, StreamedBody

__all__ = ["MistralClient", "Retry", "UpstreamResponse", "UpstreamStream"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class Retry(Enum):
    """When a failed call may be sent again."""

    # Reads and deletes: any transient failure.
    IDEMPOTENT = "idempotent"
    # Writes (a start may create a conversation): only when Mistral certainly did
    # nothing, i.e. the connection was never made or Mistral answered 429.
    UNSENT = "unsent"
    NEVER = "never"


@dataclass
class UpstreamResponse:
    status: int
    headers: httpx2.Headers
    body: bytes
    latency_ms: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class UpstreamStream:
    """An open 200 event stream; iterate `chunks()` and `close()` when done."""

    response: httpx2.Response
    latency_ms: float
    on_close: Callable[[bool], None]

    def chunks(self) -> Iterator[bytes]:
        """Raw bytes as they arrive. Raises UpstreamUnavailable if the stream breaks."""
        try:
            yield from self.response.iter_bytes()
        except httpx2.HTTPError as exc:
            raise _translate(exc) from exc

    def close(self, ok: bool = True) -> None:
        self.response.close()
        self.on_close(ok)


# Transport failures, translated once. A connect error means nothing reached Mistral.
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], type[GatewayError], str], ...] = (
    (httpx2.ConnectTimeout, UpstreamTimeout, "Mistral did not accept a connection in time"),
    (httpx2.TimeoutException, UpstreamTimeout, "Mistral did not answer in time"),
    (httpx2.ConnectError, UpstreamUnavailable, "Mistral could not be reached"),
    (httpx2.HTTPError, UpstreamUnavailable, "the connection to Mistral failed"),
)


def _translate(exc: Exception) -> GatewayError:
    for kind, error, message in _TRANSPORT_ERRORS:
        if isinstance(exc, kind):
            return error(message)
    return UpstreamUnavailable("the connection to Mistral failed")


def retry_after_s(headers: httpx2.Headers) -> float | None:
    """Mistral's requested wait: `retry-after-ms` first, then `Retry-After` (seconds or date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


class MistralClient:
    def __init__(
        self,
        transport: SdkTransport,
        breaker: Breaker | None,
        *,
        max_retries: int = 2,
        retry_max_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.breaker = breaker
        self.max_retries = max_retries
        self.retry_max_s = retry_max_s
        self._sleep = sleep

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        body: bytes | StreamedBody | None = None,
        *,
        retry: Retry = Retry.IDEMPOTENT,
        content_type: str = "application/json",
    ) -> UpstreamResponse:
        """A non-streaming call. 4xx raise UpstreamRejected (verbatim), 5xx and transport
        failures raise UpstreamUnavailable / UpstreamTimeout, an open circuit CircuitOpen."""
        response, latency_ms, state = self._send(
            operation, method, path, body, retry, False, content_type
        )
        try:
            content = response.read()
        except httpx2.HTTPError as exc:
            self._failed(state)
            raise _translate(exc) from exc
        finally:
            response.close()
        self._judge(response, content, state)
        return UpstreamResponse(response.status_code, response.headers, content, latency_ms)

    def upload(
        self,
        operation: str,
        path: str,
        content_type: str,
        chunks: Iterable[bytes],
        length: int | None,
    ) -> UpstreamResponse:
        """A POST whose body is relayed as it is read (a multipart upload), never held whole.
        Sent once: a body already read cannot be sent again."""
        streamed = StreamedBody(content_type, chunks, length)
        return self.call(operation, "POST", path, streamed, retry=Retry.NEVER)

    def download(self, operation: str, path: str) -> UpstreamStream:
        """A GET whose answer is relayed as it arrives (a file's content), never held whole."""
        return self._open(operation, "GET", path, None, Retry.IDEMPOTENT, "*/*")

    def stream(
        self, operation: str, path: str, body: bytes, *, content_type: str = "application/json"
    ) -> UpstreamStream:
        """A streaming POST: the open stream on 200, the same errors as `call` otherwise."""
        return self._open(
            operation, "POST", path, body, Retry.UNSENT, "text/event-stream", content_type
        )

    def _open(
        self,
        operation: str,
        method: str,
        path: str,
        body: bytes | None,
        retry: Retry,
        accept: str,
        content_type: str = "application/json",
    ) -> UpstreamStream:
        response, latency_ms, state = self._send(
            operation, method, path, body, retry, True, content_type, accept=accept
        )
        if response.status_code != 200:
            try:
                content = response.read()
            finally:
                response.close()
            self._judge(response, content, state)

        def on_close(ok: bool) -> None:
            if ok:
                self._succeeded(state)
            else:
                self._failed(state)

        return UpstreamStream(response, latency_ms, on_close)

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        body: bytes | StreamedBody | None,
        retry: Retry,
        stream: bool,
        content_type: str = "application/json",
        *,
        accept: str | None = None,
    ) -> tuple[httpx2.Response, float, BreakerState]:
        attempt = 0
        while True:
            state = self.breaker.before_call() if self.breaker else BreakerState(Circuit.CLOSED)
            started = time.perf_counter()
            try:
                response = self.transport.send(
                    operation,
                    method,
                    path,
                    body,
                    accept=accept or "application/json",
                    stream=stream,
                    content_type=content_type,
                )
            except httpx2.HTTPError as exc:
                self._failed(state)
                sent = not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)
                if self._may_retry(retry, attempt, sent, None):
                    attempt += 1
                    self._sleep(self._backoff(attempt, None))
                    continue
                raise _translate(exc) from exc
            except GatewayError:
                # The caller's own streamed body failed (too large, broken framing): nothing
                # is known of Mistral's health, but a trial call must not stay claimed.
                if state.state is Circuit.HALF_OPEN:
                    self._failed(state)
                raise
            latency_ms = (time.perf_counter() - started) * 1000
            status = response.status_code
            if status in _RETRY_STATUS:
                wait = retry_after_s(response.headers)
                if self._may_retry(retry, attempt, status != 429, wait):
                    response.read()
                    response.close()
                    if status != 429:
                        self._failed(state)
                    attempt += 1
                    self._sleep(self._backoff(attempt, wait))
                    continue
            return response, latency_ms, state

    def _may_retry(self, retry: Retry, attempt: int, sent: bool, wait: float | None) -> bool:
        if attempt >= self.max_retries or retry is Retry.NEVER:
            return False
        if retry is Retry.UNSENT and sent:
            return False
        # Mistral asked for a longer wait than a request should hang: answer now instead.
        return wait is None or wait <= self.retry_max_s

    def _backoff(self, attempt: int, wait: float | None) -> float:
        if wait is not None:
            return wait
        # Full jitter: spreads retries of many instances apart.
        return random.uniform(0, min(self.retry_max_s, 0.1 * 2**attempt))

    def _judge(self, response: httpx2.Response, content: bytes, state: BreakerState) -> None:
        status = response.status_code
        if status < 400:
            self._succeeded(state)
            return
        wait = retry_after_s(response.headers)
        headers = {"Retry-After": str(max(1, int(wait + 0.999)))} if wait is not None else {}
        if status < 500:
            # Mistral's own refusal (429 included) is not a sign of an unhealthy upstream.
            self._succeeded(state)
            rejected = UpstreamRejected(
                status, content, response.headers.get("content-type", "application/json")
            )
            rejected.headers.update(headers)
            raise rejected
        self._failed(state)
        error: GatewayError = (
            UpstreamTimeout("Mistral timed out")
            if status == 504
            else UpstreamUnavailable(f"Mistral answered {status}")
        )
        error.headers.update(headers)
        raise error

    def _succeeded(self, state: BreakerState) -> None:
        if self.breaker:
            self.breaker.record_success(state)

    def _failed(self, state: BreakerState) -> None:
        if self.breaker:
            self.breaker.record_failure(state)

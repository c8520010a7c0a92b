"""`deferred_stream`: a streamed response's access line, written when the stream ends.

Werkzeug iterates a streamed body after the app has returned (and after the app
has cleared the request's log context), so the stream runs each step inside a
copy of the context taken when the handler built it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator

from shared.observability._events import AccessContext, emit_access

__all__ = ["deferred_stream"]

_Chunk = bytes


def deferred_stream(
    ctx: AccessContext, chunks: Iterable[_Chunk], status: int = 200
) -> Iterator[_Chunk]:
    """Wrap a response body so the access line is written when it has been sent.

    Marks `ctx.access.deferred`, so the after hook writes nothing; the line comes
    when `chunks` is exhausted, raises, or is closed because the client went away.
    Fields the stream sets on `ctx.access` meanwhile (tokens, error_type) are on it.
    """
    ctx.access.deferred = True
    return _DeferredStream(ctx, iter(chunks), status, contextvars.copy_context())


class _DeferredStream:
    def __init__(
        self,
        ctx: AccessContext,
        chunks: Iterator[_Chunk],
        status: int,
        context: contextvars.Context,
    ) -> None:
        self._ctx = ctx
        self._chunks = chunks
        self._status = status
        self._context = context
        self._sent = 0
        self._done = False

    def __iter__(self) -> _DeferredStream:
        return self

    def __next__(self) -> _Chunk:
        if self._done:
            raise StopIteration
        try:
            chunk: _Chunk = self._context.run(next, self._chunks)
        except StopIteration:
            self._finish()
            raise
        except Exception as exc:
            # The status line is gone already: the failure shows in the line's error_type.
            access = self._ctx.access
            if access.error_type is None:
                access.error_type = "internal_error"
            if access.exception is None:
                access.exception = exc
            self._finish()
            raise
        self._sent += len(chunk)
        return chunk

    def close(self) -> None:
        """Called by the WSGI server when the client disconnects (or after the last chunk)."""
        close = getattr(self._chunks, "close", None)
        try:
            if close is not None:
                self._context.run(close)
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._context.run(emit_access, self._ctx, self._status, response_bytes=self._sent)

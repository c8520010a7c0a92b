"""The process's logging configuration, set once by `configure_logging`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.config import Settings
from shared.observability._redact import Redactor

__all__ = ["STATE", "LoggingState"]


@dataclass
class LoggingState:
    """What the handler and the event helpers read on every line."""

    project: str = ""
    log_bodies: bool = False
    redactor: Redactor = field(default_factory=Redactor)
    handler: logging.Handler | None = None
    # `_handler.write_access` once a handler is installed: the access line's own path.
    access_writer: Callable[..., bool] | None = None
    # The settings last applied, and what of them matters, to make reconfiguring a no-op.
    settings: Settings | None = None
    key: tuple[object, ...] | None = None


STATE = LoggingState()

"""`configure_logging`: the one place that installs the handler on the root logger."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from shared.config import Settings
from shared.observability._redact import Redactor
from shared.observability._state import STATE

__all__ = ["configure_logging", "reset_logging"]

_lock = threading.Lock()
_previous_level: int | None = None
# The library writes a one-off diagnostic line through this logger with our handler
# attached to it; propagating to the root, where the same handler sits, would write it twice.
_DIAGNOSTIC_LOGGER = "google.cloud.logging_v2.handlers.structured_log"


_CHATTY_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore")


def configure_logging(settings: Settings) -> None:
    """Send every log record to stdout as Cloud Logging structured JSON, at LOG_LEVEL.

    Idempotent: calling it again with equal settings does nothing; with other settings
    it updates the level, project and body logging and registers any new secrets, and
    there is still exactly one handler. No network I/O: the project id is given, never
    detected from the metadata server.
    """
    global _previous_level
    # FunctionApp calls this on every request: the same settings object returns at once.
    if settings is STATE.settings:
        return
    key = _key(settings)
    if key == STATE.key:
        STATE.settings = settings
        return
    with _lock:
        if key == STATE.key:
            return
        STATE.redactor.register(*_secrets(settings))
        STATE.log_bodies = settings.log_bodies
        root = logging.getLogger()
        if _previous_level is None:
            _previous_level = root.level
        root.setLevel(settings.log_level.upper())
        if STATE.handler is None or STATE.project != settings.gcp_project:
            from shared.observability._handler import GatewayLogHandler, write_access

            handler = GatewayLogHandler(project_id=settings.gcp_project or None)
            if STATE.handler is not None:
                root.removeHandler(STATE.handler)
            root.addHandler(handler)
            STATE.handler = handler
            STATE.access_writer = write_access
            # Its import (google-cloud-logging) brought most of the process's modules.
            from shared.heap import settle_heap

            settle_heap("log handler")
        STATE.project = settings.gcp_project
        logging.getLogger(_DIAGNOSTIC_LOGGER).propagate = False
        # The HTTP client logs every upstream request at INFO: a line per call that
        # the access line already covers (upstream_latency_ms). Keep its warnings.
        for noisy in _CHATTY_LOGGERS:
            if logging.getLogger(noisy).level == logging.NOTSET:
                logging.getLogger(noisy).setLevel(logging.WARNING)
        STATE.key = key
        STATE.settings = settings


def reset_logging() -> None:
    """Undo `configure_logging` (tests): remove the handler, forget registered secrets."""
    global _previous_level
    with _lock:
        root = logging.getLogger()
        if STATE.handler is not None:
            root.removeHandler(STATE.handler)
            STATE.handler.close()
        if _previous_level is not None:
            root.setLevel(_previous_level)
            _previous_level = None
        STATE.handler = None
        STATE.access_writer = None
        STATE.key = None
        STATE.settings = None
        STATE.project = ""
        STATE.log_bodies = False
        STATE.redactor = Redactor()


def _secrets(settings: Settings) -> list[str]:
    found = [settings.mistral_api_key, settings.redis_password, settings.db_password]
    for url in (settings.database_url, settings.redis_url):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found.append(password)
    return [s for s in found if s]


def _key(settings: Settings) -> tuple[object, ...]:
    return (
        settings.log_level.upper(),
        settings.gcp_project,
        settings.log_bodies,
        tuple(_secrets(settings)),
    )

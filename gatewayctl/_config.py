"""Where the gateway is and which key to use: flags, then the environment, then the
`.local/stack.json` that `make run` writes (when run beside it)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Target", "UsageError", "find_stack", "resolve"]


class UsageError(Exception):
    """A problem with what was asked: printed, exit status 2."""


@dataclass(frozen=True)
class Target:
    url: str
    key: str
    # The batch function's own URL (make run), where a batch is posted as Pub/Sub would.
    batch_url: str | None = None


def find_stack(explicit: str | None = None) -> dict[str, Any] | None:
    """The running local stack's details, if there is one beside us."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("GATEWAY_STATE_DIR"):
        candidates.append(Path(os.environ["GATEWAY_STATE_DIR"]) / "stack.json")
    candidates.append(Path.cwd() / ".local" / "stack.json")
    for path in candidates:
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
    if explicit:
        raise UsageError(f"no stack file at {explicit}")
    return None


def resolve(url: str | None, key: str | None, stack_file: str | None) -> Target:
    stack = find_stack(stack_file) or {}
    url = url or os.environ.get("GATEWAY_URL") or stack.get("url")
    key = key or os.environ.get("GATEWAY_KEY") or stack.get("admin_key")
    batch_url = os.environ.get("GATEWAY_BATCH_URL") or stack.get("functions", {}).get("batch")
    if not url:
        raise UsageError("no gateway URL: pass --url, set GATEWAY_URL, or run beside `make run`")
    if not key:
        raise UsageError("no gateway key: pass --key, set GATEWAY_KEY, or run beside `make run`")
    return Target(url.rstrip("/"), key, batch_url)

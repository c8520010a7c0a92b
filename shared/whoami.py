"""Who the caller is: its key, tenant, role, the operations the role may call, its limits.

    GET /gateway/v1/whoami
    -> 200 {"object": "gateway.principal", "key_id", "prefix", "name", "owner_id", "role",
            "operations": [operation, ...], "limits": {"rate_limit_requests",
            "rate_limit_window", "token_budget_per_minute", "token_budget_per_day"}}

The console and the command line ask it first, so that what they offer follows the one
permission table (`shared.auth`) instead of a copy of it. Limits are the ones in force:
the key's own where it has them, else the deployment's (a budget of 0 means none).
"""

from __future__ import annotations

from typing import Any

from shared.auth import OPERATION_PERMISSIONS, may
from shared.config import Settings
from shared.keys import Principal

__all__ = ["describe"]


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def describe(principal: Principal, settings: Settings) -> dict[str, Any]:
    return {
        "object": "gateway.principal",
        "key_id": principal.key_id,
        "prefix": principal.prefix,
        "name": principal.name,
        "owner_id": principal.owner_id,
        "role": principal.role,
        "operations": sorted(op for op in OPERATION_PERMISSIONS if may(principal.role, op)),
        "limits": {
            "rate_limit_requests": principal.rate_limit_requests or settings.rate_limit_requests,
            "rate_limit_window": principal.rate_limit_window or settings.rate_limit_window,
            "token_budget_per_minute": _or(
                principal.token_budget_per_minute, settings.token_budget_per_minute
            ),
            "token_budget_per_day": _or(
                principal.token_budget_per_day, settings.token_budget_per_day
            ),
        },
    }

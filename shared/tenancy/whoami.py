"""Who the caller is: its key, tenant, role, the operations the role may call, its limits.

    GET /gateway/v1/whoami
    -> 200 {"object": "gateway.principal", "key_id", "prefix", "name", "owner_id", "role",
            "operations": [operation, ...], "limits": {"rate_limit_requests",
            "rate_limit_window", "token_budget_per_minute", "token_budget_per_day"},
            "allowed_models": [str], "allowed_agents": [str]}

The console and the command line ask it first, so that what they offer follows the one
permission table (`shared.tenancy.auth`) instead of a copy of it. Limits are the ones in force,
as `shared.tenancy.tenants.effective_limits` computes them for every request: the key's within
its tenant's, each defaulting to the deployment's (a budget of 0 means none).
"""

from __future__ import annotations

from typing import Any

from shared.config import Settings
from shared.tenancy.auth import OPERATION_PERMISSIONS, may
from shared.tenancy.keys import Principal
from shared.tenancy.tenants import effective_limits

__all__ = ["describe"]


def describe(principal: Principal, settings: Settings) -> dict[str, Any]:
    rate, budget = effective_limits(principal, settings)
    return {
        "object": "gateway.principal",
        "key_id": principal.key_id,
        "prefix": principal.prefix,
        "name": principal.name,
        "owner_id": principal.owner_id,
        "role": principal.role,
        "operations": sorted(op for op in OPERATION_PERMISSIONS if may(principal.role, op)),
        "limits": {
            "rate_limit_requests": rate.requests,
            "rate_limit_window": rate.window_s,
            "token_budget_per_minute": budget.per_minute,
            "token_budget_per_day": budget.per_day,
        },
        "allowed_models": list(principal.allowed_models),
        "allowed_agents": list(principal.allowed_agents),
    }


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.shapes import INT, STRING, const, obj

    principal = obj(
        {
            "object": const("gateway.principal"),
            "key_id": STRING,
            "prefix": STRING,
            "name": STRING,
            "owner_id": STRING,
            "role": STRING,
            "operations": {"type": "array", "items": STRING},
            "allowed_models": {"type": "array", "items": STRING},
            "allowed_agents": {"type": "array", "items": STRING},
            "limits": obj(
                {
                    "rate_limit_requests": INT,
                    "rate_limit_window": INT,
                    "token_budget_per_minute": INT,
                    "token_budget_per_day": INT,
                },
                (
                    "rate_limit_requests",
                    "rate_limit_window",
                    "token_budget_per_minute",
                    "token_budget_per_day",
                ),
            ),
        },
        ("object", "key_id", "prefix", "name", "owner_id", "role", "operations", "limits"),
    )

    return {
        "Principal": principal,
    }

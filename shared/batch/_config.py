"""The batch function's settings: the `batch_*` fields of `shared.config.Settings`."""

from __future__ import annotations

from dataclasses import dataclass, fields

from shared.config import Settings

__all__ = ["BatchSettings"]


@dataclass(frozen=True)
class BatchSettings:
    """The batch settings alone (their meaning is documented on `Settings`)."""

    batch_concurrency: int
    batch_max_age_s: int
    batch_lease_s: int
    batch_time_budget_s: int
    batch_item_max_attempts: int
    batch_rate_limit_requests: int
    batch_rate_limit_window: int

    @classmethod
    def load(cls, settings: Settings) -> BatchSettings:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

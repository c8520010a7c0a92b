"""`Call`: one authenticated operation as the domain sees it, whoever carries it.

An HTTP request (`shared.http.web.Context` is a Call with the request attached) and a
batch item (a Pub/Sub delivery's) are both Calls: the same turn function runs for
either, and nothing in it knows which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.container import Container
from shared.limits.ratelimit import Budget, Decision
from shared.observability import AccessFields
from shared.tenancy import tenants
from shared.tenancy.keys import Principal

__all__ = ["Call"]


@dataclass(kw_only=True)
class Call:
    """Who calls, on which instance's resources, and what the call has learnt so far."""

    container: Container
    request_id: str
    started: float
    # Who is calling, once authenticated (None only for the public operations).
    principal: Principal | None = None
    # The rate-limit decision, once `check_limits` has counted the call.
    decision: Decision | None = None
    # Fields for the call's access line, filled in as the call goes.
    access: AccessFields = field(default_factory=AccessFields)
    # Headers for whatever answer the call ends with (RateLimit-*).
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def caller(self) -> Principal:
        """The authenticated caller: every operation but the public ones has one."""
        if self.principal is None:
            raise RuntimeError("this call has no authenticated caller")
        return self.principal

    @property
    def owner(self) -> str:
        """The caller's tenant: every query the call runs is scoped to it."""
        return self.caller.owner_id

    def check_limits(
        self,
        estimate: int | Callable[[], int] = 0,
        *,
        per_day_only: bool = False,
        rate_first: bool = False,
    ) -> Decision:
        """Count this call against its key's rate limit and reserve tokens of its budget.

        Called once per call: by the HTTP app for most operations, by the turn itself
        (after validating the body) for the ones that spend tokens. A callable
        `estimate` (`shared.limits.estimate`, which reads the database) is asked only when
        the tenant has a token budget. `per_day_only` reserves of the day budget alone:
        a Mistral batch job's tokens are spent over hours, not within the minute.
        `rate_first` refuses a key over its request rate before a callable estimate is
        made (one more Redis read): for an estimate that reads Mistral (a batch job's).
        """
        principal = self.caller
        # The key's limits within its tenant's: a key narrows them, never widens them.
        limit, budget = tenants.effective_limits(principal, self.container.settings)
        if per_day_only:
            budget = Budget(per_day=budget.per_day)
        if callable(estimate):
            refused = None
            if rate_first and budget.active:
                refused = self.container.limiter.rate_refusal(principal.key_id, limit)
            if refused is not None:
                return self._decided(refused)
            estimate = estimate() if budget.active else 0
        decision = self.container.limiter.check(
            principal.key_id, principal.owner_id, limit, budget, estimate
        )
        return self._decided(decision)

    def _decided(self, decision: Decision) -> Decision:
        """The call's decision, in its headers and access line; raised if a refusal."""
        self.headers.update(decision.headers())
        self.access.rate_limit = decision.outcome
        self.decision = decision
        decision.raise_if_rejected()
        return decision

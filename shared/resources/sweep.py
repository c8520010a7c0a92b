"""The batch job sweep: every batch job not yet metered, of every tenant, refreshed as a
get refreshes it, so a job whose end no caller reads is still metered and its files still
become its owner's.

    take a page   the jobs not yet metered, least recently swept first, marked swept
                  (FOR UPDATE SKIP LOCKED: two runs at once take different jobs)
    each job      `refresh_batch_job`: the get's own path (Mistral's body kept, its files
                  adopted, the first body seen ended metered once: `claim_spend`)
    stop          no job left that this run has not taken, `max_jobs` taken, or the time
                  budget spent; jobs taken but not reached go back to their place

A job Mistral fails for (an error, a timeout, the job gone from Mistral) is counted as
failed and left for the next run, which takes it after every job swept since. A run in
which every job it tried failed raises `ServiceUnavailable`, so the scheduler records a
failed run; one in which some failed answers with the counts.

The batch function serves it (`POST /gateway/v1/batch/jobs/sweep`, behind Cloud Run IAM as
the push route is), run by Cloud Scheduler (terraform/modules/scheduler, docs/batches.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from shared.db import Pool
from shared.errors import ServiceUnavailable
from shared.limits.ratelimit import RateLimiter
from shared.mistral import MistralClient
from shared.observability import log_event
from shared.resources.operations import refresh_batch_job
from shared.resources.records import release_swept, sweep_started, take_unmetered_jobs

__all__ = ["SWEEP_PAGE", "SweepReport", "sweep_batch_jobs"]

# Jobs taken from the queue at once: small enough that a run out of time gives few back.
SWEEP_PAGE = 20


@dataclass(frozen=True)
class SweepReport:
    """What one run did: jobs asked about, those seen ended and metered by this run, those
    still running, those Mistral failed for, and whether it stopped with jobs left."""

    swept: int = 0
    metered: int = 0
    unfinished: int = 0
    failed: int = 0
    more: bool = False

    def body(self) -> dict[str, Any]:
        return {"object": "batch_job_sweep", **asdict(self)}


def sweep_batch_jobs(
    pool: Pool,
    client: MistralClient,
    limiter: RateLimiter | None,
    *,
    max_jobs: int,
    time_budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> SweepReport:
    """One run of the sweep over every tenant's batch jobs not yet metered: at most
    `max_jobs` of them, starting none once `time_budget_s` has passed."""
    deadline = clock() + time_budget_s
    with pool.connection() as conn:
        since = sweep_started(conn)
    swept = metered = unfinished = failed = 0
    more = False
    while swept < max_jobs:
        with pool.transaction() as conn:
            page = take_unmetered_jobs(conn, since, min(SWEEP_PAGE, max_jobs - swept))
        if not page:
            break
        for index, job in enumerate(page):
            if clock() >= deadline:
                with pool.transaction() as conn:
                    release_swept(conn, page[index:])
                more = True
                break
            swept += 1
            try:
                seen = refresh_batch_job(pool, client, job.owner, job.id, limiter=limiter)
            except Exception as exc:
                # Mistral failing for this job (or the job gone): the next run tries again.
                log_event(
                    "batch_job_sweep_failed",
                    "WARNING",
                    resource_id=job.id,
                    owner=job.owner,
                    error=type(exc).__name__,
                )
                failed += 1
                continue
            if not seen.kept:
                failed += 1
            elif seen.metered:
                metered += 1
            elif not seen.ended:
                unfinished += 1
        if more:
            break
    else:
        more = True
    report = SweepReport(swept, metered, unfinished, failed, more)
    log_event("batch_job_sweep", "INFO", **asdict(report))
    if swept and failed == swept:
        raise ServiceUnavailable(f"the batch job sweep failed for every job it tried ({swept})")
    return report

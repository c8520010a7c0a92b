"""The batch job sweep: Mistral batch jobs no caller read to their end, metered once and
their files given to their owners by the batch function's sweep route.

The admin and batch functions in process, the stand-in over real HTTP (a job runs at its
reads: RUNNING at the first, ended at the second; here the jobs are read to their end
straight from the stand-in, never through the gateway), the real database and Valkey.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from mistralai.client import Mistral

from devstack.standin import StandIn
from shared.container import Container
from shared.resources import batch_job_action
from shared.resources.sweep import sweep_batch_jobs
from shared.tenancy.keys import NewKey
from tests.support import batch_job, bearer, client, make_key

A = "tenant-a"
B = "tenant-b"
MODEL = "mistral-small-latest"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
# Two lines that succeed: 2 + 3 prompt words, 4 and 5 completion tokens.
LINES = (
    b'{"custom_id": "a", "body": {"max_tokens": 4, "messages":'
    b' [{"role": "user", "content": "hello there"}]}}\n'
    b'{"custom_id": "b", "body": {"max_tokens": 5, "messages":'
    b' [{"role": "user", "content": "one two three"}]}}\n'
)
SWEEP = "/gateway/v1/batch/jobs/sweep"


@pytest.fixture
def key_a(gateway: Container) -> NewKey:
    return make_key(gateway, "user", A, **NO_LIMIT)


@pytest.fixture
def key_b(gateway: Container) -> NewKey:
    return make_key(gateway, "user", B, **NO_LIMIT)


def _job(key: NewKey) -> str:
    """A chat batch job of `key`'s tenant over one uploaded file; its id."""
    return batch_job(key, LINES)


def _ended_in_mistral(standin: StandIn, job_id: str) -> Any:
    """The job run to its end by reading it twice straight from the stand-in."""
    direct = Mistral(api_key="direct", server_url=standin.url)
    direct.batch.jobs.get(job_id=job_id)
    ended = direct.batch.jobs.get(job_id=job_id)
    assert ended.status == "SUCCESS"
    return ended


def _usage(gateway: Container) -> list[dict[str, Any]]:
    with gateway.pool.connection() as conn:
        return conn.all(
            "SELECT owner_id, api_key_id, prompt_tokens, completion_tokens FROM usage_events"
            " WHERE operation = 'batch.jobs' ORDER BY owner_id"
        )


def _file_owner(gateway: Container, file_id: str) -> str | None:
    with gateway.pool.connection() as conn:
        row = conn.one(
            "SELECT owner_id FROM owned_resources WHERE kind = 'file' AND id = :id", id=file_id
        )
    return None if row is None else str(row["owner_id"])


def _sweep() -> dict[str, Any]:
    answer = client("batch").post(SWEEP)
    assert answer.status_code == 200, answer.get_data()
    body: dict[str, Any] = answer.get_json()
    return body


def test_one_run_meters_each_tenants_unread_job_once_and_claims_its_files(
    gateway: Container, standin: StandIn, key_a: NewKey, key_b: NewKey
) -> None:
    """Jobs of two tenants ended in Mistral, never read through the gateway: one sweep run
    records one usage event per job (its creating key's, its summed tokens), their output
    files become their owners', and the next run has nothing left to do."""
    jobs = {A: _job(key_a), B: _job(key_b)}
    ended = {tenant: _ended_in_mistral(standin, job_id) for tenant, job_id in jobs.items()}
    assert _usage(gateway) == []
    assert _sweep() == {
        "object": "batch_job_sweep",
        "swept": 2,
        "metered": 2,
        "unfinished": 0,
        "failed": 0,
        "more": False,
    }
    assert _usage(gateway) == [
        {"owner_id": A, "api_key_id": key_a.principal.key_id, "prompt_tokens": 5,
         "completion_tokens": 9},
        {"owner_id": B, "api_key_id": key_b.principal.key_id, "prompt_tokens": 5,
         "completion_tokens": 9},
    ]  # fmt: skip
    for tenant, job in ended.items():
        assert _file_owner(gateway, job.output_file) == tenant
    got = client("admin").get(f"/v1/files/{ended[A].output_file}/content", headers=bearer(key_a))
    assert got.status_code == 200, got.get_data()
    assert _sweep()["swept"] == 0
    assert len(_usage(gateway)) == 2


def test_a_running_job_is_left_for_the_next_run_and_metered_when_it_ends(
    gateway: Container, key_a: NewKey
) -> None:
    """The sweep's own read moves the stand-in's job on: the first run finds it running
    (no event), the second sees it end and meters it."""
    _job(key_a)
    first = _sweep()
    assert (first["swept"], first["unfinished"], first["metered"]) == (1, 1, 0)
    assert _usage(gateway) == []
    second = _sweep()
    assert (second["swept"], second["metered"]) == (1, 1)
    assert len(_usage(gateway)) == 1


def test_a_sweep_beside_concurrent_gets_meters_a_job_once(
    gateway: Container, standin: StandIn, key_a: NewKey
) -> None:
    """A sweep run and six gets of a job Mistral has ended, all at once: one usage event,
    its output file adopted once."""
    job_id = _job(key_a)
    ended = _ended_in_mistral(standin, job_id)
    start = threading.Barrier(7)
    failures: list[BaseException] = []

    def run(work: Any) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    def get() -> None:
        batch_job_action(gateway.pool, gateway.mistral, A, job_id, cancel=False)

    def sweep() -> None:
        sweep_batch_jobs(
            gateway.pool, gateway.mistral, gateway.limiter, max_jobs=10, time_budget_s=60
        )

    threads = [threading.Thread(target=run, args=(sweep,))]
    threads += [threading.Thread(target=run, args=(get,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert [(u["prompt_tokens"], u["completion_tokens"]) for u in _usage(gateway)] == [(5, 9)]
    with gateway.pool.connection() as conn:
        audits = conn.one(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'file.create' AND target_id = :id",
            id=ended.output_file,
        )
    assert audits is not None
    assert audits["n"] == 1
    assert _sweep()["swept"] == 0


def test_mistral_failing_for_one_job_leaves_it_for_the_next_run_and_does_the_others(
    gateway: Container, standin: StandIn, key_a: NewKey, key_b: NewKey
) -> None:
    """Mistral answers 503 to every attempt of the first job's get: that job is counted
    failed and stays unmetered, the other is metered; the next run meters the first."""
    first, second = _job(key_a), _job(key_b)
    _ended_in_mistral(standin, first)
    _ended_in_mistral(standin, second)
    attempts = gateway.settings.mistral_max_retries + 1
    standin.inject("status=503", count=attempts, operation="batch.jobs.get")
    report = _sweep()
    assert (report["swept"], report["metered"], report["failed"]) == (2, 1, 1)
    assert [u["owner_id"] for u in _usage(gateway)] == [B]
    again = _sweep()
    assert (again["swept"], again["metered"], again["failed"]) == (1, 1, 0)
    assert [u["owner_id"] for u in _usage(gateway)] == [A, B]


def test_a_run_in_which_every_job_failed_answers_503(
    gateway: Container, standin: StandIn, key_a: NewKey
) -> None:
    """Every job the run tried failed: 503 in Mistral's error shape, so the scheduler
    records a failed run; the job stays for the next one."""
    _job(key_a)
    standin.inject("status=503", count=gateway.settings.mistral_max_retries + 1)
    answer = client("batch").post(SWEEP)
    assert answer.status_code == 503, answer.get_data()
    assert answer.get_json()["object"] == "error"
    assert _sweep()["swept"] == 1


def test_a_run_stops_at_its_job_cap_and_the_rest_go_first_next_time(
    gateway: Container, key_a: NewKey
) -> None:
    """With a cap of two jobs a run asks about two of three and says there may be more; the
    next run takes the one it left before those it swept."""
    jobs = [_job(key_a) for _ in range(3)]
    capped = sweep_batch_jobs(
        gateway.pool, gateway.mistral, gateway.limiter, max_jobs=2, time_budget_s=60
    )
    assert (capped.swept, capped.more) == (2, True)
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT id FROM owned_resources WHERE kind = 'batch_job' AND swept_at IS NULL"
        )
    assert [r["id"] for r in rows] == [jobs[2]]
    nxt = sweep_batch_jobs(
        gateway.pool, gateway.mistral, gateway.limiter, max_jobs=1, time_budget_s=60
    )
    assert nxt.swept == 1
    with gateway.pool.connection() as conn:
        left = conn.one(
            "SELECT count(*) AS n FROM owned_resources WHERE kind = 'batch_job'"
            " AND swept_at IS NULL"
        )
    assert left is not None
    assert left["n"] == 0


def test_a_run_out_of_time_gives_back_the_jobs_it_took_but_did_not_reach(
    gateway: Container, key_a: NewKey
) -> None:
    """A clock past the budget after the first job: one job asked about, the other two
    released unswept (first in the next run's queue), and `more` said."""
    for _ in range(3):
        _job(key_a)
    ticks = iter([0.0, 0.0, 100.0, 100.0, 100.0])
    report = sweep_batch_jobs(
        gateway.pool,
        gateway.mistral,
        gateway.limiter,
        max_jobs=10,
        time_budget_s=50,
        clock=lambda: next(ticks),
    )
    assert (report.swept, report.more) == (1, True)
    with gateway.pool.connection() as conn:
        unswept = conn.one(
            "SELECT count(*) AS n FROM owned_resources WHERE kind = 'batch_job'"
            " AND swept_at IS NULL"
        )
    assert unswept is not None
    assert unswept["n"] == 2


def test_a_job_deleted_before_it_was_metered_is_metered_by_its_delete(
    gateway: Container, standin: StandIn, key_a: NewKey
) -> None:
    """A job ended in Mistral, never read, then deleted through the gateway: the delete
    first sees it as a get would (one usage event, its output file the owner's), since
    no read or sweep sees a deleted job."""
    job_id = _job(key_a)
    ended = _ended_in_mistral(standin, job_id)
    deleted = client("admin").delete(f"/v1/batch/jobs/{job_id}", headers=bearer(key_a))
    assert deleted.status_code in (200, 204), deleted.get_data()
    assert [u["owner_id"] for u in _usage(gateway)] == [A]
    assert _file_owner(gateway, ended.output_file) == A
    assert _sweep()["swept"] == 0

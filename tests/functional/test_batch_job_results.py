"""A batch job's results through the admin function: its output and error files become its
owner's when the gateway sees a body naming them, its spend is one usage event, and a
create is refused once the token budget is spent (what a create reserves, and how that is
settled: test_batch_job_pricing.py; jobs no caller reads: test_batch_job_sweep.py).

The admin function in process, the stand-in over real HTTP (a job runs at its reads:
RUNNING at the first, ended at the second), the real database and Valkey. What the SDK
sees end to end is in tests/e2e/test_sdk_resources.py.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest
from mistralai.client import Mistral

from devstack.standin import StandIn
from shared.container import Container
from shared.limits.ratelimit import Budget, Limit
from shared.resources import batch_job_action
from shared.tenancy.keys import NewKey
from tests.support import batch_job, bearer, client, error_code, make_key

A = "tenant-a"
B = "tenant-b"
MODEL = "mistral-small-latest"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
# Two lines that succeed (2 + 3 prompt words, 4 and 5 completion tokens) and one Mistral
# refuses (messages is no list).
LINES = (
    b'{"custom_id": "a", "body": {"max_tokens": 4, "messages":'
    b' [{"role": "user", "content": "hello there"}]}}\n'
    b'{"custom_id": "b", "body": {"max_tokens": 5, "messages":'
    b' [{"role": "user", "content": "one two three"}]}}\n'
    b'{"custom_id": "c", "body": {"messages": "not a list"}}\n'
)


@pytest.fixture
def owner(gateway: Container) -> NewKey:
    return make_key(gateway, "user", A, **NO_LIMIT)


@pytest.fixture
def stranger(gateway: Container) -> NewKey:
    return make_key(gateway, "admin", B, **NO_LIMIT)


def _job(key: NewKey, lines: bytes = LINES) -> str:
    """A chat batch job of `key`'s tenant over one uploaded file; its id."""
    return batch_job(key, lines)


def _get(key: NewKey, job_id: str) -> dict[str, Any]:
    answer = client("admin").get(f"/v1/batch/jobs/{job_id}", headers=bearer(key))
    assert answer.status_code == 200, answer.get_data()
    body: dict[str, Any] = answer.get_json()
    return body


def _finished(key: NewKey, job_id: str) -> dict[str, Any]:
    """The job read through the gateway until it ended (the stand-in's second read)."""
    statuses = [_get(key, job_id) for _ in range(2)]
    assert [s["status"] for s in statuses] == ["RUNNING", "SUCCESS"]
    return statuses[-1]


def _usage(gateway: Container, owner: str = A) -> list[dict[str, Any]]:
    with gateway.pool.connection() as conn:
        return conn.all(
            "SELECT api_key_id, operation, model, status, prompt_tokens, completion_tokens"
            " FROM usage_events WHERE owner_id = :owner AND operation = 'batch.jobs'",
            owner=owner,
        )


def _direct(standin: StandIn) -> Mistral:
    return Mistral(api_key="direct", server_url=standin.url)


def test_a_finished_jobs_files_are_its_owners_to_read(
    gateway: Container, standin: StandIn, owner: NewKey
) -> None:
    """Output and error files: retrieved, downloaded (the stand-in's bytes) and listed."""
    job = _finished(owner, _job(owner))
    assert (job["succeeded_requests"], job["failed_requests"], job["total_requests"]) == (2, 1, 3)
    app = client("admin")
    for file_id in (job["output_file"], job["error_file"]):
        got = app.get(f"/v1/files/{file_id}/content", headers=bearer(owner))
        assert got.status_code == 200, got.get_data()
        assert got.get_data() == _direct(standin).files.download(file_id=file_id).read()
        assert app.get(f"/v1/files/{file_id}", headers=bearer(owner)).get_json()["id"] == file_id
    listed = app.get("/v1/files?purpose=batch", headers=bearer(owner)).get_json()["data"]
    assert {job["output_file"], job["error_file"]} <= {f["id"] for f in listed}
    lines = app.get(f"/v1/files/{job['output_file']}/content", headers=bearer(owner)).get_data()
    assert [json.loads(x)["custom_id"] for x in lines.splitlines()] == ["a", "b"]


def test_another_tenant_gets_404_for_a_jobs_files(
    gateway: Container, owner: NewKey, stranger: NewKey
) -> None:
    """Another tenant: 404 `not_found` on retrieve, download and delete; absent from list."""
    job = _finished(owner, _job(owner))
    app = client("admin")
    for file_id in (job["output_file"], job["error_file"]):
        for answer in (
            app.get(f"/v1/files/{file_id}", headers=bearer(stranger)),
            app.get(f"/v1/files/{file_id}/content", headers=bearer(stranger)),
            app.delete(f"/v1/files/{file_id}", headers=bearer(stranger)),
        ):
            assert answer.status_code == 404, answer.get_data()
            assert error_code(answer.get_json()) == "not_found"
    listed = app.get("/v1/files?page_size=1000", headers=bearer(stranger)).get_json()["data"]
    assert not {job["output_file"], job["error_file"]} & {f["id"] for f in listed}


def test_an_output_file_is_no_ones_until_the_gateway_saw_the_job_name_it(
    gateway: Container, standin: StandIn, owner: NewKey
) -> None:
    """The job ended in Mistral, read only there: its output file is 404 to its owner too,
    until the owner's next read of the job (get here) names it."""
    job_id = _job(owner)
    direct = _direct(standin)
    direct.batch.jobs.get(job_id=job_id)
    output = direct.batch.jobs.get(job_id=job_id).output_file
    assert output is not None
    before = client("admin").get(f"/v1/files/{output}/content", headers=bearer(owner))
    assert before.status_code == 404, before.get_data()
    assert _get(owner, job_id)["output_file"] == output
    after = client("admin").get(f"/v1/files/{output}/content", headers=bearer(owner))
    assert after.status_code == 200, after.get_data()


def test_a_list_page_adopts_the_files_of_a_job_that_ended(
    gateway: Container, owner: NewKey
) -> None:
    """The list asks Mistral again for a job it holds unfinished; the files it then names
    are the owner's and its spend is counted."""
    job_id = _job(owner)
    assert _get(owner, job_id)["status"] == "RUNNING"
    listed = client("admin").get("/v1/batch/jobs", headers=bearer(owner)).get_json()["data"]
    [job] = [j for j in listed if j["id"] == job_id]
    assert job["status"] == "SUCCESS"
    got = client("admin").get(f"/v1/files/{job['output_file']}", headers=bearer(owner))
    assert got.status_code == 200, got.get_data()
    assert len(_usage(gateway)) == 1


def test_a_finished_job_records_one_usage_event_of_its_summed_tokens(
    gateway: Container, owner: NewKey
) -> None:
    """One `batch.jobs` event, the creating key's, tokens summed over the output lines;
    later gets, cancels and lists add none."""
    job_id = _job(owner)
    _finished(owner, job_id)
    _get(owner, job_id)
    client("admin").post(f"/v1/batch/jobs/{job_id}/cancel", headers=bearer(owner))
    client("admin").get("/v1/batch/jobs", headers=bearer(owner))
    assert _usage(gateway) == [
        {
            "api_key_id": owner.principal.key_id,
            "operation": "batch.jobs",
            "model": MODEL,
            "status": 200,
            "prompt_tokens": 2 + 3,
            "completion_tokens": 4 + 5,
        }
    ]


def test_an_ocr_jobs_event_counts_the_pages_of_its_lines(
    gateway: Container, owner: NewKey, standin: StandIn
) -> None:
    """A job's usage event sums what each output line reports as a call's answer does:
    OCR's pages, as many as the same documents OCR'd directly come to."""
    documents = [
        {"type": "document_url", "document_url": f"https://example.com/{n}.pdf"} for n in (1, 2)
    ]
    lines = b"".join(
        json.dumps({"custom_id": str(i), "body": {"document": d}}).encode() + b"\n"
        for i, d in enumerate(documents)
    )
    _finished(owner, batch_job(owner, lines, endpoint="/v1/ocr", model="mistral-ocr-latest"))
    direct = _direct(standin)
    pages = sum(
        direct.ocr.process(model="mistral-ocr-latest", document=d).usage_info.pages_processed
        for d in documents
    )
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT pages, prompt_tokens FROM usage_events"
            " WHERE owner_id = :owner AND operation = 'batch.jobs'",
            owner=A,
        )
    assert rows == [{"pages": pages, "prompt_tokens": 0}]
    assert pages >= 2


def test_two_requests_seeing_a_job_end_at_once_record_one_event(
    gateway: Container, standin: StandIn, owner: NewKey
) -> None:
    """Eight reads of a job Mistral has ended, at once: one usage event, files adopted once."""
    job_id = _job(owner)
    direct = _direct(standin)
    direct.batch.jobs.get(job_id=job_id)
    ended = direct.batch.jobs.get(job_id=job_id)
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def read() -> None:
        start.wait()
        try:
            batch_job_action(gateway.pool, gateway.mistral, A, job_id, cancel=False)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert [(u["prompt_tokens"], u["completion_tokens"]) for u in _usage(gateway)] == [(5, 9)]
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT owner_id, parent_id FROM owned_resources WHERE kind = 'file' AND id = :id",
            id=ended.output_file,
        )
        audits = conn.one(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'file.create' AND target_id = :id",
            id=ended.output_file,
        )
    assert rows == [{"owner_id": A, "parent_id": job_id}]
    assert audits is not None
    assert audits["n"] == 1


def test_a_job_that_failed_every_line_records_no_tokens_and_adopts_its_error_file(
    gateway: Container, owner: NewKey
) -> None:
    """FAILED (no line succeeded): no output file, the error file is the owner's, one
    usage event of 0 tokens."""
    job_id = _job(owner, b'{"custom_id": "x", "body": {"messages": 3}}\n')
    _get(owner, job_id)
    job = _get(owner, job_id)
    assert (job["status"], job["output_file"]) == ("FAILED", None)
    got = client("admin").get(f"/v1/files/{job['error_file']}/content", headers=bearer(owner))
    assert json.loads(got.get_data())["custom_id"] == "x"
    assert [(u["prompt_tokens"], u["completion_tokens"]) for u in _usage(gateway)] == [(0, 0)]


def test_a_create_is_refused_once_the_token_budget_is_spent(
    gateway: Container, standin: StandIn
) -> None:
    """With the day's budget spent, 429 `token_budget_exceeded` (as a pass-through call
    gets) before Mistral is asked. What a create reserves when budget is left:
    tests/functional/test_batch_job_pricing.py."""
    key = make_key(gateway, "user", A, token_budget_per_day=100, **NO_LIMIT)
    uploaded = client("admin").post(
        "/v1/files",
        data={"file": (io.BytesIO(LINES), "in.jsonl"), "purpose": "batch"},
        content_type="multipart/form-data",
        headers=bearer(key),
    )
    job = {"input_files": [uploaded.get_json()["id"]], "endpoint": "/v1/chat/completions"}
    limit = Limit(100_000, 60)
    spend = gateway.limiter.check("spender", A, limit, Budget(per_day=100), estimate=100)
    assert spend.allowed
    calls = standin.calls().get("batch.jobs.create", 0)
    refused = client("admin").post("/v1/batch/jobs", json=job, headers=bearer(key))
    assert refused.status_code == 429, refused.get_data()
    assert error_code(refused.get_json()) == "token_budget_exceeded"
    assert standin.calls().get("batch.jobs.create", 0) == calls


def test_a_finished_jobs_tokens_are_charged_to_the_tenants_budget(
    gateway: Container, owner: NewKey
) -> None:
    """The 14 tokens of a job seen ended count against the day budget, once: of 20, a
    reservation of 7 no longer fits, one of 6 does."""
    _finished(owner, _job(owner))
    _get(owner, _job(owner))  # another job's first read: nothing charged
    limit, budget = Limit(100_000, 60), Budget(per_day=20)
    assert gateway.limiter.check("probe", A, limit, budget, estimate=7).outcome == "budget"
    assert gateway.limiter.check("probe", A, limit, budget, estimate=6).allowed

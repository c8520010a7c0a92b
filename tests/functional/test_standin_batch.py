"""The stand-in runs batch jobs as Mistral does, at its reads: QUEUED when created, RUNNING
at the first read, ended at the second, with output and error files in its files store.
The unchanged SDK is the client, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mistralai.client import Mistral

from devstack.standin import StandIn

MODEL = "mistral-small-latest"


@pytest.fixture(autouse=True)
def _clean(standin: StandIn) -> None:
    standin.reset()


@pytest.fixture(scope="module")
def client(standin: StandIn) -> Mistral:
    return Mistral(api_key="test", server_url=standin.url)


def _chat_line(custom_id: str, text: str, max_tokens: int) -> dict[str, Any]:
    body = {"max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "body": body}


def _upload(client: Mistral, lines: list[Any]) -> str:
    content = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    uploaded = client.files.upload(
        file={"file_name": "in.jsonl", "content": content}, purpose="batch"
    )
    return str(uploaded.id)


def _lines(client: Mistral, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.files.download(file_id=file_id).read().splitlines()]


def test_a_job_is_queued_then_running_then_ends_with_its_output_file(client: Mistral) -> None:
    """QUEUED, RUNNING at the first read, SUCCESS at the second, counters filled; the output
    file holds one line per input line, the stand-in's own chat answer with its usage."""
    file_id = _upload(client, [_chat_line("a", "one two", 3), _chat_line("b", "three", 2)])
    job = client.batch.jobs.create(
        input_files=[file_id], endpoint="/v1/chat/completions", model=MODEL
    )
    assert (job.status, job.total_requests, job.started_at) == ("QUEUED", 2, None)
    running = client.batch.jobs.get(job_id=job.id)
    assert (running.status, running.completed_requests) == ("RUNNING", 0)
    assert running.started_at is not None
    ended = client.batch.jobs.get(job_id=job.id)
    assert ended.status == "SUCCESS"
    counts = (ended.completed_requests, ended.succeeded_requests, ended.failed_requests)
    assert counts == (2, 2, 0)
    assert (ended.error_file, ended.errors) == (None, [])
    assert ended.completed_at is not None
    assert ended.output_file is not None
    lines = _lines(client, ended.output_file)
    assert [(x["custom_id"], x["error"], x["response"]["status_code"]) for x in lines] == [
        ("a", None, 200),
        ("b", None, 200),
    ]
    direct = client.chat.complete(
        model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "one two"}]
    )
    first = lines[0]["response"]["body"]
    assert first["usage"] == direct.usage.model_dump(mode="json")
    assert first["choices"][0]["message"]["content"] == direct.choices[0].message.content
    meta = client.files.retrieve(file_id=ended.output_file)
    assert (meta.purpose, meta.sample_type, meta.num_lines) == ("batch", "batch_result", 2)


def test_failed_lines_go_to_the_error_file_and_a_job_with_none_succeeding_fails(
    client: Mistral,
) -> None:
    """A line Mistral refuses is an error line (its 422 kept); a job of only such lines
    is FAILED, with no output file."""
    bad = {"custom_id": "x", "body": {"messages": "no list"}}
    mixed = client.batch.jobs.create(
        input_files=[_upload(client, [_chat_line("ok", "hi", 1), bad])],
        endpoint="/v1/chat/completions",
        model=MODEL,
    )
    failed = client.batch.jobs.create(
        endpoint="/v1/chat/completions", model=MODEL, requests=[bad, bad]
    )
    for job_id in (mixed.id, failed.id, mixed.id, failed.id):
        client.batch.jobs.get(job_id=job_id)
    one, two = client.batch.jobs.get(job_id=mixed.id), client.batch.jobs.get(job_id=failed.id)
    assert (one.status, one.succeeded_requests, one.failed_requests) == ("SUCCESS", 1, 1)
    assert one.error_file is not None
    [error] = _lines(client, one.error_file)
    assert error["custom_id"] == "x"
    assert error["response"]["status_code"] == 422
    assert error["error"]["code"] == "validation_error"
    assert (two.status, two.output_file, two.failed_requests) == ("FAILED", None, 2)
    assert [(e.message, e.count) for e in two.errors] == [("Input should be a valid list", 2)]


def test_a_job_past_its_timeout_ends_timeout_exceeded_without_running(client: Mistral) -> None:
    """`timeout_hours=0`: the job has timed out by the read that would run it."""
    job = client.batch.jobs.create(
        endpoint="/v1/embeddings",
        model="mistral-embed",
        requests=[{"custom_id": "1", "body": {"input": ["a"]}}],
        timeout_hours=0,
    )
    client.batch.jobs.get(job_id=job.id)
    ended = client.batch.jobs.get(job_id=job.id)
    assert (ended.status, ended.output_file, ended.completed_requests) == (
        "TIMEOUT_EXCEEDED",
        None,
        0,
    )


def test_embeddings_and_agent_jobs_answer_with_their_own_operations(client: Mistral) -> None:
    """An embeddings line gets an embedding with its usage; a job with an `agent_id`
    answers each line as the agent (its model)."""
    agent = client.beta.agents.create(model="mistral-large-latest", name="batcher")
    embed = client.batch.jobs.create(
        endpoint="/v1/embeddings",
        model="mistral-embed",
        requests=[{"custom_id": "e", "body": {"input": ["two words"]}}],
    )
    agents = client.batch.jobs.create(
        endpoint="/v1/chat/completions",
        agent_id=agent.id,
        requests=[{"custom_id": "g", "body": {"messages": [{"role": "user", "content": "hi"}]}}],
    )
    for job_id in (embed.id, agents.id, embed.id, agents.id):
        ended = client.batch.jobs.get(job_id=job_id)
    embedded = client.batch.jobs.get(job_id=embed.id)
    assert embedded.output_file is not None
    [line] = _lines(client, embedded.output_file)
    assert line["response"]["body"]["usage"]["prompt_tokens"] == 2
    assert ended.output_file is not None
    [answer] = _lines(client, ended.output_file)
    assert answer["response"]["body"]["model"] == "mistral-large-latest"


def test_a_list_moves_on_only_the_jobs_of_its_page(client: Mistral) -> None:
    """Listing one job per page reads (and moves on) that job only."""
    made = [
        client.batch.jobs.create(
            endpoint="/v1/embeddings", model="mistral-embed", requests=[{"body": {"input": "x"}}]
        )
        for _ in range(2)
    ]
    page = client.batch.jobs.list(page_size=1, page=0).data or []
    assert [(j.id, j.status) for j in page] == [(made[1].id, "RUNNING")]
    assert client.batch.jobs.get(job_id=made[0].id).status == "RUNNING"
    assert client.batch.jobs.get(job_id=made[1].id).status == "SUCCESS"


def test_a_cancelled_job_never_runs(client: Mistral) -> None:
    """Cancelled while RUNNING: CANCELLED, no files, and later reads leave it so."""
    job = client.batch.jobs.create(
        endpoint="/v1/embeddings", model="mistral-embed", requests=[{"body": {"input": "x"}}]
    )
    client.batch.jobs.get(job_id=job.id)
    assert client.batch.jobs.cancel(job_id=job.id).status == "CANCELLED"
    again = client.batch.jobs.get(job_id=job.id)
    assert (again.status, again.output_file, again.completed_requests) == ("CANCELLED", None, 0)

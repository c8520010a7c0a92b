"""Tenant-owned Mistral resources with the unchanged SDK, through `make run`'s stack.

Each scenario runs twice with the same inputs: through the gateway (a gateway key, the
router's URL) and straight to the stand-in; the results must be equal once ids and
timestamps are numbered and masked. A gateway list must equal Mistral's own list items
for the same objects. Another tenant's objects answer 404 on every route, are absent
from lists and are refused when referenced.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mistralai.client import Mistral, errors

from devstack.router import Router
from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key
from tests.support import error_code

MODEL = "mistral-small-latest"
BATCH_LINES = b'{"custom_id": "1", "body": {"messages": [{"role": "user", "content": "hi"}]}}\n'
TIMES = ("created_at", "updated_at", "completed_at", "last_processed_at", "started_at")


@pytest.fixture(scope="module")
def gateway(stack: StackInfo, user_key: NewKey) -> Mistral:
    return Mistral(api_key=user_key.secret, server_url=stack.url)


@pytest.fixture(scope="module")
def admin(stack: StackInfo) -> Mistral:
    return Mistral(api_key=stack.admin_key, server_url=stack.url)


@pytest.fixture(scope="module")
def direct(stack: StackInfo) -> Mistral:
    return Mistral(api_key="direct", server_url=stack.mistral_url)


@pytest.fixture(scope="module")
def other(stack: StackInfo, stack_container: Container) -> Mistral:
    """An admin of another tenant: the most a stranger can hold."""
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id="e2e-resources-other", name="other", role="admin")
    return Mistral(api_key=key.secret, server_url=stack.url)


@pytest.fixture(scope="module")
def reader(stack: StackInfo, stack_container: Container) -> Mistral:
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id="e2e-tenant", name="reader", role="read_only")
    return Mistral(api_key=key.secret, server_url=stack.url)


def _normal(value: Any, ids: dict[str, str]) -> Any:
    """SDK results as plain data: ids numbered in order of appearance, times masked."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [_normal(v, ids) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in TIMES or key == "expires_at":
                out[key] = "<time>" if item else item
            elif isinstance(item, str) and (
                key.endswith("id") or key in ("url", "output_file", "error_file")
            ):
                out[key] = ids.setdefault(item.rsplit("/", 1)[-1], f"<id {len(ids)}>")
            elif key == "input_files" and isinstance(item, list):
                out[key] = [ids.setdefault(i, f"<id {len(ids)}>") for i in item]
            else:
                out[key] = _normal(item, ids)
        return out
    if isinstance(value, str) and value.startswith("https://"):
        return ids.setdefault(value.rsplit("/", 1)[-1], f"<id {len(ids)}>")
    return value


def _same(run: Callable[[Mistral], list[Any]], via: Mistral, ref: Mistral) -> list[Any]:
    """The scenario's results through the gateway, after checking they equal Mistral's."""
    got = run(via)
    assert _normal(got, {}) == _normal(run(ref), {})
    return got


def _status(call: Callable[[], Any]) -> tuple[int, Any]:
    try:
        call()
    except errors.SDKError as exc:
        body = json.loads(exc.body) if exc.body else None
        return exc.status_code, body
    except errors.MistralError as exc:  # typed 422 and the like
        return exc.status_code, json.loads(exc.body) if exc.body else None
    raise AssertionError("the call succeeded")


def _files(client: Mistral) -> list[Any]:
    uploaded = client.files.upload(
        file={"file_name": "batch.jsonl", "content": BATCH_LINES}, purpose="batch"
    )
    fetched = client.files.retrieve(file_id=uploaded.id)
    content = client.files.download(file_id=uploaded.id).read()
    url = client.files.get_signed_url(file_id=uploaded.id)
    listed = [f for f in client.files.list(page_size=1000).data if f.id == uploaded.id]
    deleted = client.files.delete(file_id=uploaded.id)
    gone = _status(lambda: client.files.retrieve(file_id=uploaded.id))[0]
    return [uploaded, fetched, content, url, listed, deleted, gone]


def test_files_match_the_stand_in(gateway: Mistral, direct: Mistral) -> None:
    """upload, retrieve, download, signed url, list and delete equal the same calls direct."""
    got = _same(_files, gateway, direct)
    assert got[2] == BATCH_LINES
    assert got[-1] == 404


def _libraries(client: Mistral) -> list[Any]:
    lib = client.beta.libraries.create(name="handbook", description="the team's")
    docs = client.beta.libraries.documents
    doc = docs.upload(
        library_id=lib.id, file={"file_name": "guide.txt", "content": b"Gateways relay."}
    )
    return [
        lib,
        doc,
        client.beta.libraries.get(library_id=lib.id),
        client.beta.libraries.update(library_id=lib.id, name="handbook 2"),
        docs.get(library_id=lib.id, document_id=doc.id),
        docs.update(library_id=lib.id, document_id=doc.id, name="guide 2.txt"),
        docs.status(library_id=lib.id, document_id=doc.id),
        docs.text_content(library_id=lib.id, document_id=doc.id),
        docs.get_signed_url(library_id=lib.id, document_id=doc.id),
        docs.extracted_text_signed_url(library_id=lib.id, document_id=doc.id),
        docs.list(library_id=lib.id),
        docs.reprocess(library_id=lib.id, document_id=doc.id),
        [x for x in client.beta.libraries.list(page_size=1000).data if x.id == lib.id],
        docs.delete(library_id=lib.id, document_id=doc.id),
        docs.list(library_id=lib.id),
        client.beta.libraries.delete(library_id=lib.id),
        _status(lambda: client.beta.libraries.get(library_id=lib.id))[0],
    ]


def test_libraries_and_documents_match_the_stand_in(gateway: Mistral, direct: Mistral) -> None:
    """Every library and document operation equals the same call made direct."""
    got = _same(_libraries, gateway, direct)
    assert got[-1] == 404
    assert got[12][0].nb_documents == 1  # the listed library counts its document


def test_accesses_match_the_stand_in(admin: Mistral, direct: Mistral) -> None:
    """An admin lists, shares and unshares a library as Mistral does."""

    def run(client: Mistral) -> list[Any]:
        lib = client.beta.libraries.create(name="shared")
        acc = client.beta.libraries.accesses
        user = "11111111-2222-4333-8444-555555555555"
        return [
            acc.list(library_id=lib.id),
            acc.update_or_create(
                library_id=lib.id, level="Viewer", share_with_uuid=user, share_with_type="User"
            ),
            acc.list(library_id=lib.id),
            acc.delete(library_id=lib.id, share_with_uuid=user, share_with_type="User"),
            acc.list(library_id=lib.id),
        ]

    got = _same(run, admin, direct)
    assert len(got[2].data) == 1
    assert got[4].data == []


def _batch(client: Mistral) -> list[Any]:
    file = client.files.upload(
        file={"file_name": "in.jsonl", "content": BATCH_LINES}, purpose="batch"
    )
    job = client.batch.jobs.create(
        input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL, metadata={"k": "v"}
    )
    # The stand-in runs a job at its reads: RUNNING at the first, ended at the second.
    ran = client.batch.jobs.create(
        input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL
    )
    return [
        job,
        client.batch.jobs.get(job_id=job.id),
        client.batch.jobs.cancel(job_id=job.id),
        [j for j in client.batch.jobs.list(status=["CANCELLED"]).data or [] if j.id == job.id],
        client.batch.jobs.delete(job_id=job.id),
        ran,
        client.batch.jobs.get(job_id=ran.id),
        [j for j in client.batch.jobs.list(page_size=1000).data if j.id == ran.id],
        client.batch.jobs.get(job_id=ran.id),
    ]


def test_batch_jobs_match_the_stand_in(gateway: Mistral, direct: Mistral) -> None:
    """create, get, cancel, list and delete a batch job, and one run to its end, equal the
    same calls direct."""
    got = _same(_batch, gateway, direct)
    assert [got[1].status, got[2].status, got[3][0].status] == ["RUNNING", "CANCELLED", "CANCELLED"]
    assert [got[6].status, got[7][0].status, got[8].status] == ["RUNNING", "SUCCESS", "SUCCESS"]
    assert got[8].output_file is not None


def _until_ended(client: Mistral, job_id: str) -> list[str]:
    """The statuses `batch.jobs.get` answers, read until the job ends (at most 10 reads)."""
    seen = []
    for _ in range(10):
        seen.append(client.batch.jobs.get(job_id=job_id).status)
        if seen[-1] in ("SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"):
            break
    return seen


def test_a_batch_job_runs_to_results_only_its_tenant_can_read(
    stack: StackInfo, direct: Mistral, other: Mistral, stack_container: Container
) -> None:
    """create -> get until SUCCESS -> the output file downloads as it does straight from
    Mistral; another tenant gets 404 and does not list it; one usage event of the summed
    tokens of its lines."""
    owner = "e2e-batch-run"
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id=owner, name="runner", role="user")
    gateway = Mistral(api_key=key.secret, server_url=stack.url)
    lines = b"".join(
        json.dumps(
            {
                "custom_id": str(n),
                "body": {"max_tokens": n, "messages": [{"role": "user", "content": "word " * n}]},
            }
        ).encode()
        + b"\n"
        for n in (1, 2, 3)
    )
    file = gateway.files.upload(file={"file_name": "run.jsonl", "content": lines}, purpose="batch")
    job = gateway.batch.jobs.create(
        input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL
    )
    assert job.status == "QUEUED"
    assert _until_ended(gateway, job.id) == ["RUNNING", "SUCCESS"]
    ended = gateway.batch.jobs.get(job_id=job.id)
    assert (ended.total_requests, ended.succeeded_requests, ended.failed_requests) == (3, 3, 0)
    assert ended.output_file is not None
    assert ended.error_file is None
    output = ended.output_file
    mine = gateway.files.download(file_id=output).read()
    assert mine == direct.files.download(file_id=output).read()
    assert [json.loads(x)["custom_id"] for x in mine.splitlines()] == ["1", "2", "3"]
    assert gateway.files.retrieve(file_id=output).purpose == "batch"
    assert output in {f.id for f in gateway.files.list(purpose="batch", page_size=1000).data}
    _not_found(lambda: other.files.retrieve(file_id=output))
    _not_found(lambda: other.files.download(file_id=output))
    assert output not in {f.id for f in other.files.list(page_size=1000).data}
    with stack_container.pool.connection() as conn:
        events = conn.all(
            "SELECT api_key_id, prompt_tokens, completion_tokens, model FROM usage_events"
            " WHERE operation = 'batch.jobs' AND owner_id = :owner",
            owner=owner,
        )
    assert events == [
        {
            "api_key_id": key.principal.key_id,
            "prompt_tokens": 1 + 2 + 3,
            "completion_tokens": 1 + 2 + 3,
            "model": MODEL,
        }
    ]


def test_a_finished_jobs_tokens_spend_the_budget_and_the_next_create_is_refused(
    stack: StackInfo, stack_container: Container
) -> None:
    """A day budget of 40: a job whose two lines are priced 16 tokens each is admitted (32
    reserved) and runs, spending 22; once it is seen ended the reservation is settled to
    those 22, and the same create (32 again, 18 left) is refused with the budget's 429
    `token_budget_exceeded`."""
    owner = "e2e-batch-budget"
    with stack_container.pool.transaction() as conn:
        key = create_key(
            conn, owner_id=owner, name="spent", role="user", limits={"token_budget_per_day": 40}
        )
    client = Mistral(api_key=key.secret, server_url=stack.url)
    line = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    lines = b"".join(
        json.dumps({"custom_id": n, "body": line}).encode() + b"\n" for n in ("1", "2")
    )
    file = client.files.upload(file={"file_name": "b.jsonl", "content": lines}, purpose="batch")
    job = client.batch.jobs.create(
        input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL
    )
    assert _until_ended(client, job.id) == ["RUNNING", "SUCCESS"]
    # The same create was admitted before the job's tokens were settled.
    status, body = _status(
        lambda: client.batch.jobs.create(
            input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL
        )
    )
    assert (status, error_code(body)) == (429, "token_budget_exceeded")


def test_a_job_no_caller_reads_is_metered_by_the_sweep(
    stack: StackInfo, direct: Mistral, stack_container: Container
) -> None:
    """A job made with the SDK and run to its end straight in the stand-in, never read
    through the gateway: its output file is 404 to its owner until one POST to the batch
    function's sweep route (as Cloud Scheduler sends it) meters it, one usage event; then
    the SDK downloads it through the gateway as Mistral serves it."""
    owner = "e2e-batch-sweep"
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id=owner, name="unread", role="user")
    client = Mistral(api_key=key.secret, server_url=stack.url)
    file = client.files.upload(
        file={"file_name": "s.jsonl", "content": BATCH_LINES}, purpose="batch"
    )
    job = client.batch.jobs.create(
        input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL
    )
    assert _until_ended(direct, job.id) == ["RUNNING", "SUCCESS"]
    output = direct.batch.jobs.get(job_id=job.id).output_file
    assert output is not None
    assert _status(lambda: client.files.download(file_id=output))[0] == 404
    url = stack.functions["batch"] + "/gateway/v1/batch/jobs/sweep"
    sweep = urllib.request.Request(url, method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(sweep, timeout=60) as answer:  # noqa: S310 - loopback
        report = json.loads(answer.read())
    assert report["metered"] >= 1
    assert (
        client.files.download(file_id=output).read() == direct.files.download(file_id=output).read()
    )
    with stack_container.pool.connection() as conn:
        events = conn.all(
            "SELECT api_key_id FROM usage_events WHERE owner_id = :owner"
            " AND operation = 'batch.jobs'",
            owner=owner,
        )
    assert events == [{"api_key_id": key.principal.key_id}]


def test_async_sdk_matches_the_stand_in(stack: StackInfo, user_key: NewKey) -> None:
    """The async SDK: a file, a library with a document and its accesses, a batch job,
    through the gateway and direct."""

    async def run(client: Mistral) -> list[Any]:
        up = await client.files.upload_async(
            file={"file_name": "a.jsonl", "content": BATCH_LINES}, purpose="batch"
        )
        lib = await client.beta.libraries.create_async(name="async")
        doc = await client.beta.libraries.documents.upload_async(
            library_id=lib.id, file={"file_name": "a.txt", "content": b"async text"}
        )
        listed = await client.beta.libraries.documents.list_async(library_id=lib.id)
        fetched = await client.files.retrieve_async(file_id=up.id)
        shares = await client.beta.libraries.accesses.list_async(library_id=lib.id)
        job = await client.batch.jobs.create_async(
            input_files=[up.id], endpoint="/v1/embeddings", model=MODEL
        )
        cancelled = await client.batch.jobs.cancel_async(job_id=job.id)
        await client.batch.jobs.delete_async(job_id=job.id)
        await client.beta.libraries.delete_async(library_id=lib.id)
        await client.files.delete_async(file_id=up.id)
        return [up, lib, doc, listed, fetched, shares, job, cancelled]

    via = Mistral(api_key=user_key.secret, server_url=stack.url)
    ref = Mistral(api_key="direct", server_url=stack.mistral_url)
    assert _normal(asyncio.run(run(via)), {}) == _normal(asyncio.run(run(ref)), {})


def test_lists_equal_mistrals_items_for_the_same_objects(gateway: Mistral, direct: Mistral) -> None:
    """A gateway list holds exactly the tenant's objects, each as Mistral lists it."""
    mine = [
        gateway.files.upload(
            file={"file_name": f"{n}.jsonl", "content": BATCH_LINES}, purpose="batch"
        )
        for n in range(3)
    ]
    listed = gateway.files.list(page_size=2, page=0)
    second = gateway.files.list(page_size=2, page=1)
    assert listed.total == second.total
    ids = {f.id for f in mine}
    upstream = {f.id: f for f in direct.files.list(page_size=10_000).data if f.id in ids}
    for item in [*listed.data, *second.data]:
        assert item.id not in ids or item == upstream[item.id]
    assert [f.id for f in listed.data[:2]] == [mine[2].id, mine[1].id]  # newest first
    for f in mine:
        gateway.files.delete(file_id=f.id)


# -- isolation: another tenant's objects ------------------------------------------------------


@pytest.fixture(scope="module")
def theirs(other: Mistral) -> dict[str, str]:
    """One of each kind, made by the other tenant."""
    file = other.files.upload(
        file={"file_name": "t.jsonl", "content": BATCH_LINES}, purpose="batch"
    )
    lib = other.beta.libraries.create(name="theirs")
    doc = other.beta.libraries.documents.upload(
        library_id=lib.id, file={"file_name": "t.txt", "content": b"secret"}
    )
    job = other.batch.jobs.create(
        input_files=[file.id], endpoint="/v1/chat/completions", model=MODEL
    )
    return {"file": file.id, "library": lib.id, "document": doc.id, "job": job.id}


def _not_found(call: Callable[[], Any]) -> None:
    status, body = _status(call)
    assert status == 404, body
    assert error_code(body) == "not_found"


def test_another_tenants_file_is_not_found_anywhere(admin: Mistral, theirs: dict[str, str]) -> None:
    """Every file route answers 404 for another tenant's file; it is absent from the list."""
    f = theirs["file"]
    _not_found(lambda: admin.files.retrieve(file_id=f))
    _not_found(lambda: admin.files.download(file_id=f))
    _not_found(lambda: admin.files.get_signed_url(file_id=f))
    _not_found(lambda: admin.files.delete(file_id=f))
    assert f not in {x.id for x in admin.files.list(page_size=1000).data}


def test_another_tenants_library_and_document_are_not_found_anywhere(
    admin: Mistral, theirs: dict[str, str]
) -> None:
    """Every library, document and access route answers 404 for another tenant's."""
    lib, doc = theirs["library"], theirs["document"]
    libs, docs = admin.beta.libraries, admin.beta.libraries.documents
    _not_found(lambda: libs.get(library_id=lib))
    _not_found(lambda: libs.update(library_id=lib, name="mine now"))
    _not_found(lambda: docs.list(library_id=lib))
    _not_found(lambda: docs.upload(library_id=lib, file={"file_name": "x.txt", "content": b"x"}))
    for call in (
        docs.get,
        docs.status,
        docs.text_content,
        docs.get_signed_url,
        docs.extracted_text_signed_url,
        docs.reprocess,
        docs.delete,
    ):
        _not_found(lambda call=call: call(library_id=lib, document_id=doc))
    _not_found(lambda: docs.update(library_id=lib, document_id=doc, name="x"))
    _not_found(lambda: admin.beta.libraries.accesses.list(library_id=lib))
    _not_found(
        lambda: admin.beta.libraries.accesses.update_or_create(
            library_id=lib, level="Editor", share_with_uuid="u", share_with_type="User"
        )
    )
    _not_found(lambda: libs.delete(library_id=lib))
    assert lib not in {x.id for x in libs.list(page_size=1000).data}
    # Their document under one of our libraries is not there either.
    ours = libs.create(name="ours")
    _not_found(lambda: docs.get(library_id=ours.id, document_id=doc))
    libs.delete(library_id=ours.id)


def test_another_tenants_batch_job_is_not_found_anywhere(
    admin: Mistral, theirs: dict[str, str]
) -> None:
    """Every batch job route answers 404 for another tenant's job; it is absent from lists."""
    job = theirs["job"]
    _not_found(lambda: admin.batch.jobs.get(job_id=job))
    _not_found(lambda: admin.batch.jobs.cancel(job_id=job))
    _not_found(lambda: admin.batch.jobs.delete(job_id=job))
    assert job not in {j.id for j in admin.batch.jobs.list(page_size=1000).data or []}


def test_references_to_another_tenants_objects_are_refused(
    admin: Mistral, theirs: dict[str, str], stack: StackInfo, other: Mistral
) -> None:
    """A batch job over their file or agent, an agent or a conversation with their library:
    404."""
    _not_found(
        lambda: admin.batch.jobs.create(
            input_files=[theirs["file"]], endpoint="/v1/chat/completions", model=MODEL
        )
    )
    tool = [{"type": "document_library", "library_ids": [theirs["library"]]}]
    _not_found(lambda: admin.beta.agents.create(model=MODEL, name="peeker", tools=tool))
    agent = admin.beta.agents.create(model=MODEL, name="honest")
    _not_found(lambda: admin.beta.agents.update(agent_id=agent.id, tools=tool))
    _not_found(lambda: admin.beta.conversations.start(model=MODEL, inputs="hi", tools=tool))
    # Their own library in their own agent is theirs to use; their agent is not ours.
    mine = other.beta.agents.create(model=MODEL, name="librarian", tools=tool)
    assert mine.tools[0].library_ids == [theirs["library"]]
    _not_found(
        lambda: admin.batch.jobs.create(
            endpoint="/v1/chat/completions",
            agent_id=mine.id,
            requests=[{"custom_id": "1", "body": {"messages": []}}],
        )
    )


def test_the_still_theirs_after_all_the_refusals(other: Mistral, theirs: dict[str, str]) -> None:
    """Nothing the stranger tried changed the owner's objects."""
    lib = other.beta.libraries.get(library_id=theirs["library"])
    assert lib.name == "theirs"
    assert lib.nb_documents == 1
    assert other.files.retrieve(file_id=theirs["file"]).id == theirs["file"]
    # Its first read: nothing the stranger tried reached Mistral.
    assert other.batch.jobs.get(job_id=theirs["job"]).status == "RUNNING"


# -- roles and limits ---------------------------------------------------------------------------


def test_roles_are_refused_what_they_may_not_do(
    reader: Mistral, gateway: Mistral, theirs: dict[str, str]
) -> None:
    """read_only lists but cannot upload or create; user cannot change a library's sharing."""
    assert isinstance(reader.files.list().data, list)
    for call in (
        lambda: reader.files.upload(file={"file_name": "r.jsonl", "content": b"{}\n"}),
        lambda: reader.beta.libraries.create(name="no"),
        lambda: reader.batch.jobs.create(input_files=[], endpoint="/v1/embeddings", model=MODEL),
    ):
        status, body = _status(call)
        assert (status, error_code(body)) == (403, "forbidden")
    lib = gateway.beta.libraries.create(name="user's")
    status, body = _status(
        lambda: gateway.beta.libraries.accesses.update_or_create(
            library_id=lib.id, level="Viewer", share_with_uuid="u", share_with_type="User"
        )
    )
    assert (status, error_code(body)) == (403, "forbidden")
    gateway.beta.libraries.delete(library_id=lib.id)


def test_an_upload_over_cloud_runs_limit_is_413_in_mistrals_shape(stack: StackInfo) -> None:
    """Past 32 MiB (Cloud Run's HTTP/1 limit), the router answers 413 before any function."""
    request = urllib.request.Request(  # noqa: S310 (the stack's own http URL)
        stack.url + "/v1/files",
        data=b"x" * 1024,
        method="POST",
        headers={
            "Authorization": f"Bearer {stack.admin_key}",
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(32 * 1024 * 1024 + 1),
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 (the stack's own http URL)
    assert refused.value.code == 413
    assert error_code(json.loads(refused.value.read())) == "payload_too_large"


def _peak_kib(pid: int) -> tuple[int, int]:
    """(resident now, peak resident) of a process, in KiB."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def test_a_100_mb_upload_streams_through_without_being_held(
    stack: StackInfo, user_key: NewKey, stack_container: Container
) -> None:
    """100 MB through the router and the admin function (HTTP/2 end to end has no 32 MiB
    cap), and back: the function's peak memory grows by far less than the file, and the
    bytes arrive."""
    from werkzeug.serving import make_server

    router = Router(dict(stack.functions), max_request_bytes=256 * 1024 * 1024)
    server = make_server("127.0.0.1", 0, router, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        admin_port = stack.functions["admin"].rsplit(":", 1)[-1]
        pids = [
            int(p) for p in os.listdir("/proc") if p.isdigit() and _listens(int(p), int(admin_port))
        ]
        assert pids, "the admin function's process was not found"
        size = 100 * 1024 * 1024
        client = Mistral(
            api_key=user_key.secret, server_url=f"http://127.0.0.1:{server.server_port}"
        )
        # A small upload and download first: the function's one-time setup (its Mistral
        # client, imports) is not the upload's memory.
        small = client.files.upload(file={"file_name": "s.bin", "content": b"s" * 1024})
        client.files.download(file_id=small.id).read()
        client.files.delete(file_id=small.id)
        before = {pid: _peak_kib(pid) for pid in pids}
        uploaded = client.files.upload(
            file={"file_name": "big.bin", "content": os.urandom(1024) * (size // 1024)},
            purpose="batch",
        )
        assert uploaded.size_bytes == size
        grown = max(_peak_kib(pid)[1] - before[pid][0] for pid in pids)
        print(f"admin function peak RSS growth for a 100 MB upload: {grown / 1024:.1f} MiB")
        assert grown < 32 * 1024, f"the function's peak memory grew by {grown} KiB"
        downloaded = client.files.download(file_id=uploaded.id)
        total = sum(len(chunk) for chunk in downloaded.iter_bytes())
        assert total == size
        grown = max(_peak_kib(pid)[1] - before[pid][0] for pid in pids)
        print(f"... and after downloading it back: {grown / 1024:.1f} MiB")
        assert grown < 32 * 1024, f"the function's peak memory grew by {grown} KiB"
        client.files.delete(file_id=uploaded.id)
    finally:
        server.shutdown()


def _listens(pid: int, port: int) -> bool:
    """True if the process (a functions-framework worker) holds the listening socket."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in table:
        parts = row.split()
        local, state, inode = parts[1], parts[3], parts[9]
        if state == "0A" and int(local.split(":")[1], 16) == port and inode in inodes:
            return True
    return False

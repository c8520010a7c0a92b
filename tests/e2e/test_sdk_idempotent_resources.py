"""Idempotency-Key on resource creates and the list filters with the unchanged SDK, through
`make run`'s stack (the router, the admin function, the stand-in): what a client that
retries a create, or filters a list, sees."""

from __future__ import annotations

import uuid

import httpx2
import pytest
from mistralai.client import Mistral

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key

MODEL = "mistral-small-latest"
LINES = b'{"custom_id": "1", "body": {"messages": [{"role": "user", "content": "hi"}]}}\n'


def _calls(stack: StackInfo, operation: str) -> int:
    """How many requests of `operation` the stand-in has had (its control API)."""
    counts: dict[str, int] = httpx2.get(stack.mistral_url + "/_standin/calls", timeout=10).json()
    return counts[operation]


@pytest.fixture(scope="module")
def mine(stack: StackInfo, user_key: NewKey) -> Mistral:
    return Mistral(api_key=user_key.secret, server_url=stack.url)


@pytest.fixture(scope="module")
def theirs(stack: StackInfo, stack_container: Container) -> Mistral:
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id="e2e-idempotent-other", name="other", role="user")
    return Mistral(api_key=key.secret, server_url=stack.url)


def test_a_batch_job_sent_twice_under_one_key_is_one_job(
    stack: StackInfo, mine: Mistral, theirs: Mistral
) -> None:
    """The SDK's second create under the key gets the first job; Mistral made one; another
    tenant's same key makes its own."""
    key = {"Idempotency-Key": f"job-{uuid.uuid4()}"}
    file_id = mine.files.upload(file={"file_name": "in.jsonl", "content": LINES}).id
    before = _calls(stack, "batch.jobs.create")
    made = [
        mine.batch.jobs.create(
            input_files=[file_id], endpoint="/v1/chat/completions", model=MODEL, http_headers=key
        )
        for _ in range(2)
    ]
    assert made[0] == made[1]
    assert _calls(stack, "batch.jobs.create") == before + 1
    their_file = theirs.files.upload(file={"file_name": "in.jsonl", "content": LINES}).id
    other = theirs.batch.jobs.create(
        input_files=[their_file], endpoint="/v1/chat/completions", model=MODEL, http_headers=key
    )
    assert other.id != made[0].id
    assert _calls(stack, "batch.jobs.create") == before + 2
    mine_listed = {
        j.id for j in mine.batch.jobs.list(created_by_me=True, page_size=1000).data or []
    }
    assert made[0].id in mine_listed
    assert other.id not in mine_listed


def test_libraries_page_by_token_through_the_router(mine: Mistral, theirs: Mistral) -> None:
    """`next_page_token` walks the caller's libraries once each, none of another tenant's."""
    tag = uuid.uuid4().hex
    made = [mine.beta.libraries.create(name=f"{tag} {n}").id for n in range(3)]
    theirs.beta.libraries.create(name=f"{tag} theirs")
    page = mine.beta.libraries.list(page_size=2, search=tag, filter_owned_by_me=True)
    seen = [x.id for x in page.data]
    while page.next_page_token:
        page = mine.beta.libraries.list(page_size=2, search=tag, page_token=page.next_page_token)
        seen += [x.id for x in page.data]
    assert seen == made[::-1]

"""The agents operations (beta.agents.*) through the unchanged SDK, gateway against stand-in.

Every call is made through the gateway (an admin key, the router's URL) and straight to
the stand-in with the same inputs; the parsed results, and the error bodies, must be equal
field by field once ids and timestamps are normalised (`_normal`, shared with the
conversation suite).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mistralai.client import Mistral, errors

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import create_key
from tests.e2e.test_sdk_conversations import MODEL, _normal, _refusal
from tests.support import error_code

_MISSING = "ag_0000000000000000000000ff"


@pytest.fixture(scope="module")
def direct(stack: StackInfo) -> Mistral:
    return Mistral(api_key="direct", server_url=stack.mistral_url)


@pytest.fixture(scope="module")
def admin(stack: StackInfo) -> Mistral:
    return Mistral(api_key=stack.admin_key, server_url=stack.url)


def _every_agent_call(sdk: Mistral, run: str) -> list[Any]:
    """Each of the twelve agents operations once, in a life from create to delete."""
    ids: dict[str, str] = {run: "<run>"}
    agents = sdk.beta.agents
    name = f"conformance-{run}"
    seen: list[Any] = []
    made = agents.create(
        model=MODEL,
        name=name,
        description="first",
        instructions="Be brief.",
        metadata={"run": run},
        completion_args={"temperature": 0.2},
    )
    aid = made.id
    seen.append(_normal(made, ids))
    seen.append(_normal(agents.get(agent_id=aid), ids))
    seen.append(_normal(agents.update(agent_id=aid, description="second"), ids))
    seen.append(_normal(agents.update_version(agent_id=aid, version=0), ids))
    seen.append(_normal(agents.list_versions(agent_id=aid, page=0, page_size=10), ids))
    seen.append(_normal(agents.get_version(agent_id=aid, version="1"), ids))
    seen.append(_normal(agents.create_version_alias(agent_id=aid, alias="stable", version=1), ids))
    seen.append(_normal(agents.list_version_aliases(agent_id=aid), ids))
    seen.append(_normal(agents.get(agent_id=aid, agent_version="stable"), ids))
    seen.append(_normal(agents.list(page=0, page_size=10, name=name), ids))
    seen.append(_normal(agents.list(page=0, page_size=10, search=run), ids))
    seen.append(_normal(agents.list_pages(page_size=10, name=name).result, ids))
    agents.delete_version_alias(agent_id=aid, alias="stable")
    seen.append(_normal(agents.list_version_aliases(agent_id=aid), ids))
    agents.delete(agent_id=aid)
    seen.append(_refusal(lambda: agents.get(agent_id=aid), ids))
    return seen


def test_every_agent_call_matches_the_stand_in_field_by_field(
    admin: Mistral, direct: Mistral
) -> None:
    """create, get, update, update_version, list_versions, get_version, aliases (create,
    list, delete), list, list_pages and delete equal the stand-in's, ids and times aside."""
    got = _every_agent_call(admin, "run-a71c")
    expected = _every_agent_call(direct, "run-5e0d")
    assert len(got) == len(expected)
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"step {step}"


def test_agent_pages_match_the_stand_in(admin: Mistral, direct: Mistral) -> None:
    """list_pages, followed with the SDK's own `next()`, walks the same pages as the stand-in's
    for the same agents (page tokens aside)."""

    def walk(sdk: Mistral, run: str) -> list[Any]:
        ids: dict[str, str] = {run: "<run>"}
        for i in range(3):
            sdk.beta.agents.create(model=MODEL, name=f"paged-{run}-{i}", metadata={"run": run})
        pages = []
        page = sdk.beta.agents.list_pages(page_size=2, search=f"paged-{run}")
        while page is not None:
            last = page.result.next_page_token is None
            pages.append(_normal([a.name for a in page.result.data], ids) + [last])
            page = page.next()
        return pages

    assert walk(admin, "run-b1") == walk(direct, "run-c2")


def _errors(sdk: Mistral, foreign: str, mine: str) -> list[tuple[int, Any]]:
    """Missing agents on every operation, another tenant's, a missing version or alias, a bad
    page token, invalid fields."""
    ids: dict[str, str] = {}
    agents = sdk.beta.agents
    calls = [
        lambda: agents.get(agent_id=_MISSING),
        lambda: agents.update(agent_id=_MISSING, description="x"),
        lambda: agents.update_version(agent_id=_MISSING, version=0),
        lambda: agents.list_versions(agent_id=_MISSING),
        lambda: agents.get_version(agent_id=_MISSING, version="0"),
        lambda: agents.create_version_alias(agent_id=_MISSING, alias="a", version=0),
        lambda: agents.list_version_aliases(agent_id=_MISSING),
        lambda: agents.delete_version_alias(agent_id=_MISSING, alias="a"),
        lambda: agents.delete(agent_id=_MISSING),
        # Another tenant's agent is simply not there (the stand-in: an id never made).
        lambda: agents.get(agent_id=foreign),
        lambda: agents.update(agent_id=foreign, description="x"),
        lambda: agents.delete(agent_id=foreign),
        # A version the agent does not have; an alias it does not have.
        lambda: agents.get_version(agent_id=mine, version="7"),
        lambda: agents.update_version(agent_id=mine, version=7),
        lambda: agents.get(agent_id=mine, agent_version="no-such-alias"),
        lambda: agents.list_pages(page_token="not-a-token"),
        # Invalid fields the SDK sends and the server refuses (422, `detail` as parsed).
        lambda: agents.list(page=-1),
        lambda: agents.update_version(agent_id=mine, version=-1),
        lambda: agents.list_versions(agent_id=mine, page=-1),
        lambda: agents.list_versions(agent_id=mine, page_size=0),
        lambda: agents.get_version(agent_id=mine, version="abc"),
    ]
    return [_refusal(call, {foreign: "<foreign>"} | ids) for call in calls]


def test_agent_errors_match_the_stand_in(
    admin: Mistral, direct: Mistral, stack: StackInfo, stack_container: Container
) -> None:
    """Every agents operation on a missing agent, another tenant's, a missing version or
    alias, a bad page token and invalid fields: the same status and error body as the
    stand-in's (a 422 compared as the SDK parses it: its `detail`)."""
    with stack_container.pool.transaction() as conn:
        other = create_key(conn, owner_id="e2e-agents-other", name="other", role="admin").secret
    theirs = Mistral(api_key=other, server_url=stack.url).beta.agents.create(
        model=MODEL, name="not yours"
    )
    mine = admin.beta.agents.create(model=MODEL, name="errors")
    reference = direct.beta.agents.create(model=MODEL, name="errors")
    got = _errors(admin, theirs.id, mine.id)
    expected = _errors(direct, "ag_00000000000000000000000e", reference.id)
    assert [status for status, _ in got] == [status for status, _ in expected]
    for step, (mine_body, their_body) in enumerate(zip(got, expected, strict=True)):
        assert mine_body == their_body, f"step {step}"


def test_an_oversize_agent_is_413_in_mistrals_error_shape(admin: Mistral) -> None:
    """An agent whose body is over the gateway's limit is refused before Mistral with
    Mistral's error shape (the stand-in has no limit to compare with)."""
    with pytest.raises(errors.SDKError) as raised:
        admin.beta.agents.create(model=MODEL, name="big", instructions="x" * 2_000_000)
    assert raised.value.status_code == 413
    assert error_code(json.loads(raised.value.body)) == "payload_too_large"

"""Cross-tenant attacks over HTTP: ids guessed, listed, and swapped into bodies.

Tenant B owns an agent, a conversation (with a marker string in it), an entry and a
key. Tenant A, with its own user and admin keys, tries to reach each of them: every
route answers exactly as for an id that does not exist (404, never 403), lists never
show them, a body naming them is refused before Mistral is called, and nothing of B's
changes. Only the operator role crosses tenants (keys, usage, tenants, audit: issue
15), and an admin naming another tenant is answered 404 as for a missing one. The per-route
isolation tables are tests/functional/test_core_*.py; this is the attacker's view of
the whole stack.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant

MODEL = "mistral-small-latest"
SUITE = "attacks: tenancy"


@dataclass(frozen=True)
class World:
    a_user: Tenant
    a_admin: Tenant
    b_user: Tenant
    b_admin: Tenant
    b_agent: str
    b_conversation: str
    b_entry: str
    b_marker: str
    a_conversation: str
    a_entry: str


@pytest.fixture(scope="module")
def world(fstack: FaultStack) -> World:
    """Two tenants, B with an agent, a marked conversation and a key, A with its own."""
    a_user, a_admin = fstack.tenant("rel-ten-a"), fstack.tenant("rel-ten-a", "admin")
    b_user, b_admin = fstack.tenant("rel-ten-b"), fstack.tenant("rel-ten-b", "admin")
    marker = "B-PRIVATE-" + secrets.token_hex(6)
    with fstack.client() as client:
        agent = client.post(
            "/v1/agents",
            json={"name": "b agent", "model": MODEL, "instructions": marker},
            headers=b_admin.headers,
        ).json()["id"]
        b_turn = client.post(
            "/v1/conversations",
            json={"inputs": marker, "agent_id": agent, "metadata": {"secret": marker}},
            headers=b_user.headers,
        ).json()
        a_turn = client.post(
            "/v1/conversations",
            json={"inputs": "mine", "model": MODEL},
            headers=a_user.headers,
        ).json()
    return World(
        a_user,
        a_admin,
        b_user,
        b_admin,
        agent,
        b_turn["conversation_id"],
        b_turn["outputs"][0]["id"],
        marker,
        a_turn["conversation_id"],
        a_turn["outputs"][0]["id"],
    )


def _b_state(fstack: FaultStack, world: World) -> Any:
    """What must not change: B's conversation, entries, agent and keys."""
    return (
        fstack.rows(
            "SELECT id, status, agent_id, updated_at FROM conversations WHERE owner_id = :o",
            o=world.b_user.owner,
        ),
        fstack.rows(
            "SELECT id FROM conversation_entries WHERE owner_id = :o ORDER BY id",
            o=world.b_user.owner,
        ),
        fstack.rows(
            "SELECT id, status, name, version FROM agents WHERE owner_id = :o",
            o=world.b_user.owner,
        ),
        fstack.rows(
            "SELECT id, role, revoked_at, rotated_at, rate_limit_requests FROM api_keys"
            " WHERE owner_id = :o ORDER BY id",
            o=world.b_user.owner,
        ),
    )


def _guesses(world: World) -> list[tuple[str, str, str, Any]]:
    """(key role, method, path with {id}, body) for every route that takes an id."""
    conv, agent = "/v1/conversations/{id}", "/v1/agents/{id}"
    gw = "/gateway/v1"
    return [
        ("user", "GET", conv, None),
        ("user", "GET", conv + "/history", None),
        ("user", "GET", conv + "/messages", None),
        ("user", "GET", gw + "/conversations/{id}/entries", None),
        ("user", "POST", conv, {"inputs": "hijack"}),
        ("user", "POST", conv + "/restart", {"inputs": "fork", "from_entry_id": world.b_entry}),
        ("user", "POST", gw + "/conversations/{id}/archive", None),
        ("user", "POST", gw + "/conversations/{id}/unarchive", None),
        ("admin", "DELETE", conv, None),
        ("user", "GET", agent, None),
        ("admin", "GET", agent, None),
        ("admin", "PATCH", agent, {"instructions": "pwned"}),
        ("admin", "PATCH", agent + "/version?version=1", None),
        ("admin", "GET", agent + "/versions", None),
        ("admin", "GET", agent + "/versions/1", None),
        ("admin", "GET", agent + "/aliases", None),
        ("admin", "PUT", agent + "/aliases?alias=x&version=1", None),
        ("admin", "DELETE", agent + "/aliases?alias=x", None),
        ("admin", "DELETE", agent, None),
        ("user", "GET", gw + "/batches/{id}", None),
        ("user", "GET", gw + "/batches/{id}/items", None),
    ]


def test_guessed_ids_answer_exactly_like_missing_ones_and_change_nothing(
    fstack: FaultStack, world: World
) -> None:
    """Another tenant's ids on every route answer 404 exactly as missing ids, changing nothing."""
    before = _b_state(fstack, world)
    calls = fstack.standin.calls()
    statuses = []
    with fstack.client() as client:
        for role, method, template, body in _guesses(world):
            key = world.a_admin if role == "admin" else world.a_user
            target = world.b_agent if "/agents/" in template else world.b_conversation
            answers = []
            for guessed in (target, "conv_doesnotexist0000"):
                path = template.replace("{id}", guessed)
                kwargs: dict[str, Any] = {"headers": key.headers}
                if body is not None:
                    kwargs["json"] = body
                answers.append(client.request(method, path, **kwargs))
            theirs, missing = answers
            statuses += [theirs.status_code, missing.status_code]
            assert theirs.status_code == missing.status_code == 404, (method, template)
            assert theirs.json()["type"] == missing.json()["type"], (method, template)
            assert world.b_marker not in theirs.text
    figures.add("attack_inputs", len(statuses))
    figures.scenario(
        SUITE, "another tenant's ids guessed on every route", answers=status_counts(statuses)
    )
    assert _b_state(fstack, world) == before
    # Nothing of it reached Mistral: Mistral cannot tell tenants apart.
    assert fstack.standin.calls() == calls


def test_lists_and_filters_never_show_another_tenants_objects(
    fstack: FaultStack, world: World
) -> None:
    """Lists filtered by another tenant's ids show nothing of it; its usage is 404 to a user."""
    metadata = json.dumps({"secret": world.b_marker})
    reads = [
        ("user", "/v1/conversations?page_size=100"),
        ("user", f"/v1/conversations?metadata={metadata}"),
        ("user", "/gateway/v1/conversations?limit=100"),
        ("user", f"/gateway/v1/conversations?agent_id={world.b_agent}"),
        ("user", f"/gateway/v1/conversations?metadata={metadata}"),
        ("user", "/v1/agents"),
        ("admin", f"/v1/agents?id={world.b_agent}"),
        ("admin", "/v1/agents?name=b%20agent"),
        ("admin", "/v1/agents?search=b"),
        ("admin", "/v1/agents/pages?page_size=100"),
        ("admin", "/gateway/v1/keys?limit=1000"),
        ("user", "/gateway/v1/usage?group_by=key,agent,model,day"),
        ("user", "/gateway/v1/batches"),
    ]
    statuses = []
    with fstack.client() as client:
        for role, path in reads:
            key = world.a_admin if role == "admin" else world.a_user
            answer = client.get(path, headers=key.headers)
            statuses.append(answer.status_code)
            assert answer.status_code == 200, path
            for secret in (world.b_marker, world.b_agent, world.b_conversation, "rel-ten-b"):
                assert secret not in answer.text, (path, secret)
        refused = client.get(
            f"/gateway/v1/usage?owner_id={world.b_user.owner}", headers=world.a_user.headers
        )
    figures.add("attack_inputs", len(statuses) + 1)
    figures.scenario(
        SUITE, "lists filtered by another tenant's ids", answers=status_counts(statuses)
    )
    assert refused.status_code == 404


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("start", {"inputs": "use theirs", "agent_id": "{agent}"}),
        ("append", {"inputs": "switch to theirs", "agent_id": "{agent}"}),
        ("restart", {"inputs": "fork", "from_entry_id": "{own_entry}", "agent_id": "{agent}"}),
    ],
)
def test_another_tenants_agent_named_in_a_body_is_refused_before_mistral(
    fstack: FaultStack, world: World, operation: str, body: dict[str, Any]
) -> None:
    """A turn body naming another tenant's agent is a 404 before Mistral; nothing records it."""
    filled = {
        k: (
            v.replace("{agent}", world.b_agent).replace("{own_entry}", world.a_entry)
            if isinstance(v, str)
            else v
        )
        for k, v in body.items()
    }
    if operation == "start":
        path = "/v1/conversations"
    elif operation == "append":
        path = f"/v1/conversations/{world.a_conversation}"
    else:
        path = f"/v1/conversations/{world.a_conversation}/restart"
    calls = fstack.standin.calls()
    answer = httpx2.post(fstack.url + path, json=filled, headers=world.a_user.headers, timeout=15)
    figures.add("attack_inputs")
    figures.scenario(
        SUITE,
        f"{operation} body naming another tenant's agent",
        answers={str(answer.status_code): 1},
    )
    assert answer.status_code == 404
    assert answer.json()["type"] == "not_found"
    assert fstack.standin.calls() == calls
    assert (
        fstack.rows(
            "SELECT id FROM conversations WHERE owner_id = :o AND agent_id = :a",
            o=world.a_user.owner,
            a=world.b_agent,
        )
        == []
    )


def test_restart_from_another_tenants_entry_stores_nothing(
    fstack: FaultStack, world: World
) -> None:
    """A restart from another tenant's entry is refused and leaves no conversation behind."""
    before = fstack.rows("SELECT id FROM conversations WHERE owner_id = :o", o=world.a_user.owner)
    answer = httpx2.post(
        f"{fstack.url}/v1/conversations/{world.a_conversation}/restart",
        json={"inputs": "fork theirs", "from_entry_id": world.b_entry},
        headers=world.a_user.headers,
        timeout=15,
    )
    figures.add("attack_inputs")
    figures.scenario(
        SUITE, "restart from another tenant's entry", answers={str(answer.status_code): 1}
    )
    assert 400 <= answer.status_code < 500
    assert world.b_marker not in answer.text
    assert (
        fstack.rows("SELECT id FROM conversations WHERE owner_id = :o", o=world.a_user.owner)
        == before
    )


def test_idempotency_keys_never_replay_across_tenants(fstack: FaultStack, world: World) -> None:
    """One Idempotency-Key and body from two tenants runs once for each, never replayed across."""
    key = "shared-" + secrets.token_hex(4)
    body = {"inputs": "same words", "model": MODEL}
    first = httpx2.post(
        fstack.url + "/v1/conversations",
        json=body,
        headers={**world.a_user.headers, "Idempotency-Key": key},
        timeout=15,
    )
    second = httpx2.post(
        fstack.url + "/v1/conversations",
        json=body,
        headers={**world.b_user.headers, "Idempotency-Key": key},
        timeout=15,
    )
    figures.add("attack_inputs", 2)
    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["conversation_id"] != second.json()["conversation_id"]
    owner = fstack.stored_conversation(second.json()["conversation_id"])
    assert owner is not None
    assert owner["owner_id"] == world.b_user.owner

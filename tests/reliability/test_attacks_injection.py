"""SQL injection in every string field and query parameter, over HTTP.

Each payload goes into each free-text field of every body the gateway reads (turns,
agents, keys) and into each query parameter and id of every read route. What must
hold for every one: no 5xx, no other tenant's data in the answer, no statement slowed
by an injected sleep, and afterwards the schema and the other tenant's rows exactly
as they were. A NUL character (which PostgreSQL cannot store) is answered 422 instead
of a 500 or an answered-but-unstored turn.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from reliability.figures import figures, status_counts
from reliability.harness import FaultStack, Tenant

MODEL = "mistral-small-latest"
SUITE = "attacks: injection"

PAYLOADS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE conversations; --",
    '" OR ""="',
    "1; SELECT pg_sleep(3); --",
    "' UNION SELECT id, owner_id, secret_hash FROM api_keys --",
    "%' OR owner_id LIKE '%",
    "rel-inj-b",
    ":owner",
    "$1",
    "\\'; COMMIT; DROP TABLE api_keys; --",
    "ʼ OR ʼ1ʼ=ʼ1",
    "') OR ('a'='a",
    "*/ SELECT 1 /*",
]


@pytest.fixture(scope="module")
def victim(fstack: FaultStack) -> tuple[Tenant, str]:
    """Tenant B, with a conversation whose text is a marker A must never see."""
    tenant = fstack.tenant("rel-inj-b")
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "B-INJECTION-MARKER", "model": MODEL, "metadata": {"k": "B-META"}},
        headers=tenant.headers,
        timeout=15,
    )
    assert answer.status_code == 200
    return tenant, answer.json()["conversation_id"]


@pytest.fixture(scope="module")
def attacker(fstack: FaultStack) -> tuple[Tenant, Tenant, str, str]:
    """Tenant A's user and admin keys, A's own conversation and its first output id."""
    user, admin = fstack.tenant("rel-inj-a"), fstack.tenant("rel-inj-a", "admin")
    answer = httpx2.post(
        fstack.url + "/v1/conversations",
        json={"inputs": "mine", "model": MODEL},
        headers=user.headers,
        timeout=15,
    ).json()
    return user, admin, answer["conversation_id"], answer["outputs"][0]["id"]


def _schema(fstack: FaultStack) -> list[dict[str, Any]]:
    return fstack.rows(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, column_name"
    )


def _victim_rows(fstack: FaultStack, owner: str) -> Any:
    return (
        fstack.rows("SELECT id, updated_at FROM conversations WHERE owner_id = :o", o=owner),
        fstack.rows("SELECT count(*) AS n FROM conversation_entries WHERE owner_id = :o", o=owner),
        fstack.rows("SELECT id, revoked_at FROM api_keys WHERE owner_id = :o", o=owner),
    )


def _bodies(payload: str, conversation: str, entry: str) -> list[tuple[str, str, str, Any]]:
    """(role, method, path, body) with the payload in every free-text field."""
    return [
        (
            "user",
            "POST",
            "/v1/conversations",
            {
                "inputs": payload,
                "model": payload,
                "name": payload,
                "description": payload,
                "instructions": payload,
                "metadata": {payload: payload},
                payload: payload,
            },
        ),
        (
            "user",
            "POST",
            "/v1/conversations",
            {"inputs": [{"role": "user", "content": payload}], "agent_id": payload},
        ),
        (
            "user",
            "POST",
            "/v1/conversations",
            {"inputs": "x", "model": MODEL, "agent_version": payload},
        ),
        (
            "user",
            "POST",
            "/v1/conversations",
            {"inputs": "x", "model": MODEL, "handoff_execution": payload},
        ),
        (
            "user",
            "POST",
            f"/v1/conversations/{conversation}",
            {"inputs": payload, payload: payload},
        ),
        (
            "user",
            "POST",
            f"/v1/conversations/{conversation}/restart",
            {"inputs": payload, "from_entry_id": payload},
        ),
        (
            "user",
            "POST",
            f"/v1/conversations/{conversation}/restart",
            {"inputs": "x", "from_entry_id": entry, "metadata": {"k": payload}},
        ),
        (
            "admin",
            "POST",
            "/v1/agents",
            {
                "name": payload[:60] + str(time.monotonic_ns()),
                "model": payload,
                "description": payload,
                "instructions": payload,
            },
        ),
        ("admin", "POST", "/gateway/v1/keys", {"name": payload, "role": "user"}),
        ("admin", "POST", "/gateway/v1/keys", {"name": "x", "role": payload}),
    ]


def _queries(payload: str, conversation: str) -> list[tuple[str, str]]:
    """(role, path) with the payload in every query parameter and path id of the reads."""
    q = quote(payload, safe="")
    meta = quote(json.dumps({"k": payload}), safe="")
    seg = quote(payload, safe="'()*+,;=:@!$&")
    return [
        ("user", f"/v1/conversations?page={q}&page_size={q}&metadata={q}"),
        ("user", f"/v1/conversations?metadata={meta}"),
        ("user", f"/gateway/v1/conversations?agent_id={q}&model={q}"),
        ("user", f"/gateway/v1/conversations?status={q}&limit={q}&cursor={q}"),
        ("user", f"/gateway/v1/conversations?created_after={q}&created_before={q}"),
        ("user", f"/gateway/v1/conversations?metadata={meta}"),
        ("user", f"/gateway/v1/conversations/{conversation}/entries?limit={q}&cursor={q}"),
        ("user", f"/gateway/v1/batches?limit={q}&cursor={q}"),
        ("user", f"/gateway/v1/batches/{seg}/items?status={q}&cursor={q}"),
        ("user", f"/v1/conversations/{seg}"),
        ("user", f"/v1/conversations/{seg}/history"),
        ("user", f"/v1/conversations/{seg}/messages"),
        ("user", f"/gateway/v1/batches/{seg}"),
        ("user", f"/v1/agents?name={q}&search={q}&id={q}&sources={q}&metadata={meta}"),
        ("user", f"/v1/agents?page={q}&page_size={q}&deployment_chat={q}"),
        ("user", f"/v1/agents/pages?page_token={q}&page_size={q}"),
        ("user", f"/v1/agents/{seg}?agent_version={q}"),
        ("user", f"/v1/agents/{seg}/versions?page={q}"),
        ("user", f"/v1/agents/{seg}/aliases"),
        ("user", f"/gateway/v1/usage?from={q}&to={q}&group_by={q}"),
        ("user", f"/gateway/v1/usage?owner_id={q}"),
        ("admin", f"/gateway/v1/usage?owner_id={q}"),
        ("admin", f"/gateway/v1/keys?limit={q}&page_token={q}"),
        ("admin", f"/gateway/v1/keys/{seg}/revoke"),
        ("admin", f"/gateway/v1/keys/{seg}/rotate"),
    ]


def test_injection_in_every_field_and_parameter_is_inert(
    fstack: FaultStack, victim: tuple[Tenant, str], attacker: tuple[Tenant, Tenant, str, str]
) -> None:
    """SQL payloads in every field and parameter: no 5xx, no leak, no sleep, schema intact."""
    b_tenant, b_conversation = victim
    user, admin, conversation, entry = attacker
    schema, b_rows = _schema(fstack), _victim_rows(fstack, b_tenant.owner)
    statuses: list[int] = []
    failures: list[str] = []
    with fstack.client() as client:
        for payload in PAYLOADS:
            requests: list[tuple[str, str, str, Any]] = [
                *_bodies(payload, conversation, entry),
                *(
                    (role, "POST" if path.endswith(("/revoke", "/rotate")) else "GET", path, None)
                    for role, path in _queries(payload, conversation)
                ),
            ]
            for role, method, path, body in requests:
                key = admin if role == "admin" else user
                started = time.monotonic()
                answer = client.request(method, path, json=body, headers=key.headers)
                seconds = time.monotonic() - started
                statuses.append(answer.status_code)
                where = f"{method} {path[:80]} [{payload}]"
                if answer.status_code >= 500:
                    failures.append(f"{answer.status_code} {where}: {answer.text[:120]}")
                if "B-INJECTION-MARKER" in answer.text or b_conversation in answer.text:
                    failures.append(f"B's data in {where}")
                if "B-META" in answer.text or "secret_hash" in answer.text.replace(payload, ""):
                    failures.append(f"leak in {where}")
                if seconds > 2.5:
                    failures.append(f"{seconds:.1f}s for {where}")
    figures.add("attack_inputs", len(statuses))
    figures.scenario(
        SUITE,
        f"{len(PAYLOADS)} SQL payloads x every string field and query parameter",
        requests=len(statuses),
        answers=status_counts(statuses),
        server_errors=sum(s >= 500 for s in statuses),
    )
    assert failures == []
    assert _schema(fstack) == schema
    assert _victim_rows(fstack, b_tenant.owner) == b_rows


NUL = "a\x00b"


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        (
            "user",
            "POST",
            "/v1/conversations",
            {"inputs": "x", "model": MODEL, "metadata": {"k": NUL}},
        ),
        ("user", "POST", "/v1/conversations", {"inputs": "x", "model": MODEL, "name": NUL}),
        ("user", "POST", "/v1/conversations", {"inputs": "x", "model": NUL}),
        ("user", "POST", "/v1/conversations", {"inputs": "x", "agent_id": NUL}),
        (
            "user",
            "POST",
            "/v1/conversations",
            {"inputs": [{"role": "user", "content": "x", NUL: 1}], "model": MODEL},
        ),
        ("admin", "POST", "/v1/agents", {"name": NUL, "model": MODEL}),
        ("admin", "POST", "/gateway/v1/keys", {"name": NUL, "role": "user"}),
        ("user", "GET", "/v1/agents?name=a%00b", None),
        ("user", "GET", "/v1/conversations?page_size=5&x=%00", None),
        ("admin", "GET", "/gateway/v1/usage?group_by=%00", None),
    ],
)
def test_nul_characters_are_refused_with_422_not_stored_half(
    fstack: FaultStack,
    attacker: tuple[Tenant, Tenant, str, str],
    role: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    """A NUL character in a body string, key or query parameter is a 422 before Mistral."""
    user, admin, _, _ = attacker
    key = admin if role == "admin" else user
    calls = sum(fstack.standin.calls().values())
    answer = httpx2.request(method, fstack.url + path, json=body, headers=key.headers, timeout=15)
    figures.add("attack_inputs")
    assert answer.status_code == 422, answer.text[:200]
    assert answer.json()["detail"][0]["msg"] == "NUL characters (\\u0000) are not accepted"
    assert sum(fstack.standin.calls().values()) == calls

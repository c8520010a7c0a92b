"""Usage: requests and tokens per key, agent, model and day, equal to what is stored."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.container import Container
from shared.db import Conn
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, make_key

OWNER = "tenant-a"
OTHER = "tenant-b"
USAGE = "/gateway/v1/usage"
DAY = date(2025, 6, 1)
MODELS = ("mistral-small-latest", "mistral-large-latest")


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def add_agent(conn: Conn, agent_id: str, owner: str) -> None:
    conn.run(
        "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
        " VALUES (:id, :owner, :id, :model, '{}', now(), now())",
        id=agent_id,
        owner=owner,
        model=MODELS[0],
    )


def add_turn(
    conn: Conn,
    *,
    owner: str,
    key_id: str,
    conversation_id: str,
    agent_id: str | None,
    model: str,
    when: datetime,
    prompt: int,
    completion: int,
) -> None:
    """One turn as the start function stores it: an input entry carrying the prompt tokens, an
    output entry carrying the completion tokens, and the request's usage event."""
    exists = conn.one("SELECT 1 AS x FROM conversations WHERE id = :id", id=conversation_id)
    if exists is None:
        conn.run(
            "INSERT INTO conversations (id, owner_id, agent_id, model, created_at, updated_at)"
            " VALUES (:id, :owner, :agent, :model, :t, :t)",
            id=conversation_id,
            owner=owner,
            agent=agent_id,
            model=model,
            t=when,
        )
    seq = conn.run(
        "SELECT count(*) FROM conversation_entries WHERE conversation_id = :id", id=conversation_id
    )[0][0]
    for offset, (kind, p, c) in enumerate(
        (("message.input", prompt, 0), ("message.output", 0, completion))
    ):
        conn.run(
            "INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type, body,"
            " prompt_tokens, completion_tokens, agent_id, model, created_at)"
            " VALUES (:conv, :seq, :id, :owner, :type, '{}', :p, :c, :agent, :model, :t)",
            conv=conversation_id,
            seq=seq + offset,
            id=f"msg_{conversation_id}_{seq + offset}",
            owner=owner,
            type=kind,
            p=p,
            c=c,
            agent=agent_id,
            model=model,
            t=when,
        )
    conn.run(
        "INSERT INTO usage_events (owner_id, api_key_id, operation, agent_id, model,"
        " conversation_id, status, prompt_tokens, completion_tokens, created_at)"
        " VALUES (:owner, :key, 'conversations.append', :agent, :model, :conv, 200, :p, :c, :t)",
        owner=owner,
        key=key_id,
        agent=agent_id,
        model=model,
        conv=conversation_id,
        p=prompt,
        c=completion,
        t=when,
    )


@pytest.fixture
def keys(container: Container) -> dict[str, NewKey]:
    return {
        "admin": make_key(container, "admin", OWNER),
        "user": make_key(container, "user", OWNER),
        "read_only": make_key(container, "read_only", OWNER),
        "other": make_key(container, "read_only", OTHER),
    }


@pytest.fixture
def seeded(container: Container, keys: dict[str, NewKey]) -> None:
    """Forty turns over five days (two of them outside the range asked), two keys, two agents
    and model conversations, plus another tenant's turns on the same days."""
    rng = random.Random(6)
    with container.pool.transaction() as conn:
        for agent_id, owner in (("ag_1", OWNER), ("ag_2", OWNER), ("ag_x", OTHER)):
            add_agent(conn, agent_id, owner)
        for n in range(40):
            day = DAY + timedelta(days=rng.randrange(-1, 4))
            agent = rng.choice(["ag_1", "ag_2", None])
            key = rng.choice(["user", "admin"])
            add_turn(
                conn,
                owner=OWNER,
                key_id=keys[key].principal.key_id,
                conversation_id=f"conv_{agent}_{key}_{day}",
                agent_id=agent,
                model=rng.choice(MODELS),
                # The first and last second of a day are the edges that matter.
                when=at(day, 0)
                if n % 7 == 0
                else at(day, 23, 59, 59)
                if n % 5 == 0
                else at(day, rng.randrange(24), rng.randrange(60)),
                prompt=rng.randrange(1, 500),
                completion=rng.randrange(1, 500),
            )
            add_turn(
                conn,
                owner=OTHER,
                key_id=keys["other"].principal.key_id,
                conversation_id=f"conv_other_{day}",
                agent_id="ag_x",
                model=MODELS[0],
                when=at(day, 12),
                prompt=1000,
                completion=1000,
            )


def entry_sums(container: Container, owner: str, first: date, last: date) -> dict[Any, Any]:
    """Tokens stored on entries per (agent, model, day) for the owner and days."""
    with container.pool.connection() as conn:
        rows = conn.all(
            "SELECT agent_id, model, CAST(timezone('UTC', created_at) AS date) AS day,"
            " sum(prompt_tokens) AS p, sum(completion_tokens) AS c FROM conversation_entries"
            " WHERE owner_id = :owner AND created_at >= :start AND created_at < :end"
            " GROUP BY 1, 2, 3",
            owner=owner,
            start=at(first, 0),
            end=at(last + timedelta(days=1), 0),
        )
    return {(r["agent_id"], r["model"], r["day"].isoformat()): (r["p"], r["c"]) for r in rows}


def ask(key: NewKey, **query: str) -> Any:
    return client("admin").get(USAGE, query_string=query, headers=bearer(key))


FIRST, LAST = DAY, DAY + timedelta(days=2)


@pytest.mark.usefixtures("seeded")
def test_usage_equals_the_tokens_stored_on_entries(
    container: Container, keys: dict[str, NewKey]
) -> None:
    """Usage per agent, model and day equals the entries' token sums for the same days."""
    body = ask(
        keys["read_only"],
        **{"from": FIRST.isoformat(), "to": LAST.isoformat(), "group_by": "agent,model,day"},
    ).get_json()
    expected = entry_sums(container, OWNER, FIRST, LAST)
    got = {
        (r["agent_id"], r["model"], r["day"]): (r["prompt_tokens"], r["completion_tokens"])
        for r in body["data"]
    }
    assert got == expected
    assert body["totals"]["prompt_tokens"] == sum(p for p, _ in expected.values())
    assert body["totals"]["completion_tokens"] == sum(c for _, c in expected.values())
    assert body["totals"]["total_tokens"] == sum(p + c for p, c in expected.values())
    with container.pool.connection() as conn:
        turns = conn.run(
            "SELECT count(*) FROM conversation_entries WHERE owner_id = :o AND type ="
            " 'message.output' AND created_at >= :s AND created_at < :e",
            o=OWNER,
            s=at(FIRST, 0),
            e=at(LAST + timedelta(days=1), 0),
        )[0][0]
    assert body["totals"]["requests"] == turns
    assert (body["from"], body["to"], body["owner_id"]) == (
        FIRST.isoformat(),
        LAST.isoformat(),
        OWNER,
    )


@pytest.mark.usefixtures("seeded")
def test_usage_per_key_adds_up_to_the_totals(keys: dict[str, NewKey]) -> None:
    """Grouped by key only, one row per key that was used, summing to the same totals."""
    query = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
    by_key = ask(keys["admin"], group_by="key", **query).get_json()
    total = ask(keys["admin"], group_by="", **query).get_json()
    assert {r["key_id"] for r in by_key["data"]} == {
        keys["user"].principal.key_id,
        keys["admin"].principal.key_id,
    }
    assert all(set(r) == {"key_id", *total["totals"]} for r in by_key["data"])
    for name in ("requests", "prompt_tokens", "completion_tokens"):
        assert sum(r[name] for r in by_key["data"]) == total["totals"][name]
    assert by_key["totals"] == total["totals"]


@pytest.mark.usefixtures("seeded")
def test_a_tenant_reads_only_its_own_usage(container: Container, keys: dict[str, NewKey]) -> None:
    """read_only, user and admin get 404 for another tenant; an operator may read it."""
    query = {"from": FIRST.isoformat(), "to": LAST.isoformat(), "owner_id": OTHER}
    assert ask(keys["read_only"], **query).status_code == 404
    assert ask(keys["user"], **query).status_code == 404
    assert ask(keys["admin"], **query).status_code == 404
    operator = make_key(container, "operator", "operators")
    theirs = ask(operator, **query).get_json()
    assert theirs["owner_id"] == OTHER
    expected = entry_sums(container, OTHER, FIRST, LAST)
    assert theirs["totals"]["prompt_tokens"] == sum(p for p, _ in expected.values())
    own = ask(keys["other"], **{k: v for k, v in query.items() if k != "owner_id"}).get_json()
    assert own["totals"] == theirs["totals"]


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2025-06-03", "to": "2025-06-01"},
        {"from": "2025-6-1"},
        {"to": "yesterday"},
        {"from": "2024-01-01", "to": "2025-06-01"},
        {"group_by": "day,tenant"},
    ],
)
def test_bad_usage_queries_are_422(keys: dict[str, NewKey], query: dict[str, str]) -> None:
    """Reversed or malformed dates, a range over 366 days and an unknown grouping: 422."""
    answer = ask(keys["read_only"], **query)
    assert answer.status_code == 422
    assert answer.get_json()["detail"][0]["loc"][0] == "query"


def test_the_default_range_ends_today(container: Container, keys: dict[str, NewKey]) -> None:
    """Without dates, the last 30 days up to today are counted, grouped by day."""
    with container.pool.connection() as conn:
        conn.run(
            "INSERT INTO usage_events (owner_id, operation, status, prompt_tokens,"
            " completion_tokens) VALUES (:o, 'conversations.start', 200, 4, 6),"
            " (:o, 'conversations.start', 429, 0, 0)",
            o=OWNER,
        )
    body = ask(keys["read_only"]).get_json()
    today = datetime.now(UTC).date()
    assert body["to"] == today.isoformat()
    assert body["from"] == (today - timedelta(days=29)).isoformat()
    assert body["data"] == [
        {
            "day": today.isoformat(),
            "requests": 2,
            "failed_requests": 1,
            "prompt_tokens": 4,
            "completion_tokens": 6,
            "total_tokens": 10,
            "pages": 0,
            "audio_seconds": 0,
        }
    ]


def test_pages_and_audio_seconds_are_summed_per_group_within_the_tenant(
    container: Container, keys: dict[str, NewKey]
) -> None:
    """OCR pages and audio seconds are summed per operation and day, in rows and totals,
    and another tenant's never count."""
    rows = [
        (OWNER, "ocr.process", 3, 0, at(DAY, 1)),
        (OWNER, "ocr.process", 4, 0, at(DAY, 23, 59, 59)),
        (OWNER, "ocr.process", 5, 0, at(DAY + timedelta(days=1), 0)),
        (OWNER, "audio.transcriptions.complete", 0, 61, at(DAY, 2)),
        (OWNER, "audio.transcriptions.complete", 0, 7, at(DAY, 3)),
        (OTHER, "ocr.process", 100, 0, at(DAY, 1)),
        (OTHER, "audio.transcriptions.complete", 0, 1000, at(DAY, 2)),
    ]
    with container.pool.transaction() as conn:
        for owner, operation, pages, seconds, when in rows:
            conn.run(
                "INSERT INTO usage_events (owner_id, operation, status, pages, audio_seconds,"
                " created_at) VALUES (:owner, :op, 200, :pages, :seconds, :t)",
                owner=owner,
                op=operation,
                pages=pages,
                seconds=seconds,
                t=when,
            )
    query = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    body = ask(keys["read_only"], **query, group_by="day,operation").get_json()
    got = [(r["day"], r["operation"], r["pages"], r["audio_seconds"]) for r in body["data"]]
    second = (DAY + timedelta(days=1)).isoformat()
    assert got == [
        (DAY.isoformat(), "audio.transcriptions.complete", 0, 68),
        (DAY.isoformat(), "ocr.process", 7, 0),
        (second, "ocr.process", 5, 0),
    ]
    assert (body["totals"]["pages"], body["totals"]["audio_seconds"]) == (12, 68)
    assert body["totals"]["total_tokens"] == 0
    theirs = ask(make_key(container, "operator", "operators"), **query, owner_id=OTHER)
    assert (theirs.get_json()["totals"]["pages"], theirs.get_json()["totals"]["audio_seconds"]) == (
        100,
        1000,
    )

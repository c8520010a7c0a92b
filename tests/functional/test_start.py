"""The start function against the real database, Valkey and the Mistral stand-in."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

MODEL = "mistral-small-latest"


@pytest.fixture
def gateway(container: Container, base_settings: Settings, standin: StandIn) -> Iterator[Container]:
    """A container whose Mistral is the stand-in, over the test's empty tables."""
    standin.reset()
    settings = dataclasses.replace(
        base_settings,
        mistral_server_url=standin.url,
        mistral_timeout_ms=1500,
        breaker_failure_threshold=1000,
    )
    local = Container(settings, pool=container.pool, redis_client=container.redis)
    previous = set_container(local)
    yield local
    set_container(previous)


@pytest.fixture
def key(gateway: Container) -> NewKey:
    return make_key(gateway, "user", owner="tenant-a")


def _start(key: NewKey, body: dict[str, Any], **headers: str) -> Any:
    return client("start").post("/v1/conversations", json=body, headers={**bearer(key), **headers})


def _rows(container: Container, sql: str, **params: Any) -> list[dict[str, Any]]:
    with container.pool.connection() as conn:
        return conn.all(sql, **params)


def test_start_relays_mistral_answer_and_stores_the_turn(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A start answers Mistral's body and stores the conversation with both entries."""
    answer = _start(key, {"inputs": "hello there", "model": MODEL, "stream": False})
    assert answer.status_code == 200
    body = answer.get_json()
    conversation_id = body["conversation_id"]
    rows = _rows(
        gateway,
        "SELECT owner_id, model, status FROM conversations WHERE id = :id",
        id=conversation_id,
    )
    assert rows == [{"owner_id": "tenant-a", "model": MODEL, "status": "active"}]
    entries = _rows(
        gateway,
        "SELECT type, prompt_tokens, completion_tokens, body FROM conversation_entries"
        " WHERE conversation_id = :id ORDER BY seq",
        id=conversation_id,
    )
    assert [e["type"] for e in entries] == ["message.input", "message.output"]
    assert entries[0]["prompt_tokens"] == body["usage"]["prompt_tokens"]
    assert entries[1]["completion_tokens"] == body["usage"]["completion_tokens"]
    upstream = json.loads(_standin_get(standin, f"/v1/conversations/{conversation_id}/history"))
    assert [e["body"] for e in entries] == upstream["entries"]


def _standin_get(standin: StandIn, path: str) -> bytes:
    import urllib.request

    url = standin.url + path
    request = urllib.request.Request(url, headers={"Authorization": "Bearer x"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
        data: bytes = reply.read()
        return data


def test_unknown_fields_pass_through_both_ways(gateway: Container, key: NewKey) -> None:
    """A field the gateway does not know reaches Mistral, and Mistral's comes back."""
    echo = {"nested": [1, {"x": "y"}], "flag": True}
    answer = _start(key, {"inputs": "hi", "model": MODEL, "x_standin_echo": echo})
    assert answer.status_code == 200
    assert answer.get_json()["x_standin_echo"] == echo


def test_append_and_restart_extend_the_stored_history(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Append adds entries to the same conversation; restart stores a new one with a parent."""
    first = _start(key, {"inputs": "one", "model": MODEL}).get_json()
    conversation_id = first["conversation_id"]
    appended = client("start").post(
        f"/v1/conversations/{conversation_id}",
        json={"inputs": "two", "stream": False, "store": True, "handoff_execution": "server"},
        headers=bearer(key),
    )
    assert appended.status_code == 200
    count = _rows(
        gateway,
        "SELECT count(*) AS n FROM conversation_entries WHERE conversation_id = :id",
        id=conversation_id,
    )
    assert count == [{"n": 4}]
    entry_id = first["outputs"][0]["id"]
    restarted = client("start").post(
        f"/v1/conversations/{conversation_id}/restart",
        json={"inputs": "three", "from_entry_id": entry_id, "stream": False},
        headers=bearer(key),
    )
    assert restarted.status_code == 200
    new_id = restarted.get_json()["conversation_id"]
    assert new_id != conversation_id
    row = _rows(
        gateway,
        "SELECT parent_conversation_id, parent_entry_id, model FROM conversations WHERE id = :id",
        id=new_id,
    )
    assert row == [
        {"parent_conversation_id": conversation_id, "parent_entry_id": entry_id, "model": MODEL}
    ]
    stored = _rows(
        gateway,
        "SELECT body FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
        id=new_id,
    )
    upstream = json.loads(_standin_get(standin, f"/v1/conversations/{new_id}/history"))
    assert [r["body"] for r in stored] == upstream["entries"]


def test_a_restart_stored_without_mistrals_history_keeps_the_branched_prefix(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A restart whose history read fails stores the source's entries up to the one it
    restarts from, then its own turn (inputs provisional): what Mistral holds. The next
    turn, with the history readable, gives the inputs Mistral's ids and stores no entry
    twice."""
    first = _start(key, {"inputs": "one", "model": MODEL}).get_json()
    source, entry_id = first["conversation_id"], first["outputs"][0]["id"]
    standin.inject("status=503", count=9, operation="conversations.history")
    restarted = client("start").post(
        f"/v1/conversations/{source}/restart",
        json={"inputs": "three", "from_entry_id": entry_id, "stream": False},
        headers=bearer(key),
    )
    assert restarted.status_code == 200
    standin.clear_faults()
    new_id = restarted.get_json()["conversation_id"]

    def stored() -> list[dict[str, Any]]:
        return [
            r["body"]
            for r in _rows(
                gateway,
                "SELECT body FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
                id=new_id,
            )
        ]

    def upstream() -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = json.loads(
            _standin_get(standin, f"/v1/conversations/{new_id}/history")
        )["entries"]
        return entries

    def shape(entries: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        return [(e["type"], e.get("content")) for e in entries]

    now = stored()
    assert shape(now) == shape(upstream())
    assert [e["id"] for e in now[:2]] == [e["id"] for e in upstream()[:2]]  # the prefix
    assert now[2]["id"].startswith("gwin_")  # the restart's own input, provisional
    appended = client("start").post(
        f"/v1/conversations/{new_id}",
        json={"inputs": "four", "stream": False, "store": True, "handoff_execution": "server"},
        headers=bearer(key),
    )
    assert appended.status_code == 200
    assert stored() == upstream()


def test_a_restart_cut_short_stores_its_branched_prefix_as_incomplete(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A streamed restart cut mid-way (Mistral may keep nothing of it) stores the copied
    prefix as incomplete, as it stores the turn: nothing it cannot vouch for is complete."""
    first = _start(key, {"inputs": "one", "model": MODEL}).get_json()
    source, entry_id = first["conversation_id"], first["outputs"][0]["id"]
    standin.inject("cut=2", count=1, operation="conversations.restart")
    restarted = client("start").post(
        f"/v1/conversations/{source}/restart",
        json={"inputs": "three", "from_entry_id": entry_id, "stream": True},
        headers=bearer(key),
    )
    restarted.get_data()
    rows = _rows(
        gateway,
        "SELECT e.id, e.status FROM conversation_entries e JOIN conversations c"
        " ON c.id = e.conversation_id WHERE c.parent_conversation_id = :source ORDER BY e.seq",
        source=source,
    )
    assert len(rows) >= 3
    assert [r["id"] for r in rows[:2]] == [
        e["id"]
        for e in json.loads(_standin_get(standin, f"/v1/conversations/{source}/history"))[
            "entries"
        ][:2]
    ]
    assert {r["status"] for r in rows} == {"incomplete"}


def test_stream_is_relayed_and_stored(gateway: Container, key: NewKey) -> None:
    """A streamed start relays every event in order and stores the finished turn."""
    answer = _start(
        key,
        {
            "inputs": "stream please",
            "model": MODEL,
            "stream": True,
            "completion_args": {"max_tokens": 30},
        },
        Accept="text/event-stream",
    )
    assert answer.status_code == 200
    assert answer.mimetype == "text/event-stream"
    text = answer.get_data(as_text=True)
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "conversation.response.started"
    assert events[-1] == "conversation.response.done"
    assert events.count("message.output.delta") == 30
    started = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])
    rows = _rows(
        gateway,
        "SELECT type, status, completion_tokens FROM conversation_entries"
        " WHERE conversation_id = :id ORDER BY seq",
        id=started["conversation_id"],
    )
    assert [(r["type"], r["status"]) for r in rows] == [
        ("message.input", "complete"),
        ("message.output", "complete"),
    ]
    assert rows[1]["completion_tokens"] == 30


def test_cut_stream_ends_with_an_error_event_and_incomplete_entry(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """An upstream stream cut mid-way ends with conversation.response.error, never cleanly."""
    standin.inject("cut=4", count=1, operation="conversations.start")
    answer = _start(key, {"inputs": "cut me", "model": MODEL, "stream": True})
    text = answer.get_data(as_text=True)
    assert "event: conversation.response.error" in text
    assert "conversation.response.done" not in text
    started = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])
    rows = _rows(
        gateway,
        "SELECT type, status FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
        id=started["conversation_id"],
    )
    assert ("message.output", "incomplete") in [(r["type"], r["status"]) for r in rows]


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        ("status=503", 502, "upstream_unavailable"),
        ("status=500", 502, "upstream_unavailable"),
        ("reset", 502, "upstream_unavailable"),
        ("timeout=5000", 504, "upstream_timeout"),
        ("status_after=503", 502, "upstream_unavailable"),
    ],
)
def test_upstream_failures_answer_as_documented_and_store_nothing(
    gateway: Container, key: NewKey, standin: StandIn, fault: str, status: int, kind: str
) -> None:
    """5xx, resets and timeouts map to 502/504, are not retried, and store nothing."""
    standin.inject(fault, count=5, operation="conversations.start")
    answer = _start(key, {"inputs": "fail", "model": MODEL})
    assert answer.status_code == status
    assert error_code(answer.get_json()) == kind
    # A start that may have reached Mistral is never sent twice.
    assert standin.calls()["conversations.start"] == 1
    assert _rows(gateway, "SELECT count(*) AS n FROM conversations") == [{"n": 0}]
    standin.clear_faults()


def test_mistral_429_is_retried_after_its_delay(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """One 429 with Retry-After is retried (Mistral did nothing): one conversation results."""
    standin.inject("status=429;retry_after_ms=50", count=1, operation="conversations.start")
    answer = _start(key, {"inputs": "busy", "model": MODEL})
    assert answer.status_code == 200
    assert standin.calls()["conversations.start"] == 2
    assert _rows(gateway, "SELECT count(*) AS n FROM conversations") == [{"n": 1}]


def test_persistent_mistral_429_reaches_the_caller_verbatim(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Mistral's own 429 reaches the caller with its status, body and Retry-After."""
    standin.inject("status=429;retry_after=7", count=10, operation="conversations.start")
    answer = _start(key, {"inputs": "busy", "model": MODEL})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.get_json()["object"] == "error"
    standin.clear_faults()


def test_mistral_4xx_is_relayed_with_status_and_body(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """A Mistral 400 reaches the caller unchanged."""
    standin.inject("status=400", count=1, operation="conversations.start")
    answer = _start(key, {"inputs": "bad", "model": MODEL})
    assert answer.status_code == 400
    assert answer.get_json()["object"] == "error"


def test_same_idempotency_key_concurrently_calls_mistral_once(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """20 concurrent identical requests with one Idempotency-Key: one upstream call."""
    standin.latency_ms = 300
    answers: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        reply = _start(key, {"inputs": "once", "model": MODEL}, **{"Idempotency-Key": "k-1"})
        with lock:
            answers.append(reply)

    threads = [threading.Thread(target=send) for _ in range(20)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        standin.latency_ms = 0
    assert [a.status_code for a in answers] == [200] * 20
    assert len({a.get_data() for a in answers}) == 1
    assert standin.calls()["conversations.start"] == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19


def test_idempotency_key_with_another_body_is_422(gateway: Container, key: NewKey) -> None:
    """Reusing a key for a different request is refused, not replayed."""
    assert (
        _start(key, {"inputs": "a", "model": MODEL}, **{"Idempotency-Key": "k-2"}).status_code
        == 200
    )
    answer = _start(key, {"inputs": "b", "model": MODEL}, **{"Idempotency-Key": "k-2"})
    assert answer.status_code == 422
    assert answer.get_json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_a_refused_idempotency_key_gives_its_reservation_back(
    gateway: Container, standin: StandIn
) -> None:
    """A turn refused by its key (another body: 422) spends none of the day budget: what it
    reserved before the key was read is given back."""
    budgeted = make_key(gateway, "user", owner="tenant-budget", token_budget_per_day=10**9)

    def charged() -> int:
        days = gateway.redis.keys("gw:tok:d:tenant-budget:*")
        return sum(int(gateway.redis.get(k) or 0) for k in days)

    first = _start(budgeted, {"inputs": "a", "model": MODEL}, **{"Idempotency-Key": "k-r"})
    assert first.status_code == 200
    spent = charged()
    assert spent > 0
    other = {"inputs": "b " * 200, "model": MODEL}
    assert _start(budgeted, other, **{"Idempotency-Key": "k-r"}).status_code == 422
    assert charged() == spent
    assert standin.calls()["conversations.start"] == 1


def test_failed_call_releases_its_idempotency_key(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """After a failed call, a retry with the same key runs instead of replaying the failure."""
    standin.inject("status=503", count=1, operation="conversations.start")
    assert (
        _start(key, {"inputs": "x", "model": MODEL}, **{"Idempotency-Key": "k-3"}).status_code
        == 502
    )
    assert (
        _start(key, {"inputs": "x", "model": MODEL}, **{"Idempotency-Key": "k-3"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"model": MODEL}, ["body", "inputs"]),
        ({"inputs": "x"}, ["body"]),
        ({"inputs": "x", "model": MODEL, "agent_id": "ag_1"}, ["body"]),
        ({"inputs": 5, "model": MODEL}, ["body", "inputs"]),
        ({"inputs": "x", "model": MODEL, "stream": "yes"}, ["body", "stream"]),
        ({"inputs": ["not an entry"], "model": MODEL}, ["body", "inputs", 0]),
    ],
)
def test_invalid_start_bodies_are_422_with_detail(
    gateway: Container, key: NewKey, standin: StandIn, body: dict[str, Any], loc: list[Any]
) -> None:
    """Wrong fields answer 422 naming the field, and nothing is sent upstream."""
    answer = _start(key, body)
    assert answer.status_code == 422
    assert loc in [d["loc"] for d in answer.get_json()["detail"]]
    assert standin.calls()["conversations.start"] == 0


def test_other_tenants_conversation_is_404(gateway: Container, key: NewKey) -> None:
    """Appending to another tenant's conversation answers 404, as for a missing one."""
    conversation_id = _start(key, {"inputs": "mine", "model": MODEL}).get_json()["conversation_id"]
    other = make_key(gateway, "user", owner="tenant-b")
    answer = client("start").post(
        f"/v1/conversations/{conversation_id}", json={"inputs": "theirs"}, headers=bearer(other)
    )
    missing = client("start").post(
        "/v1/conversations/conv_missing", json={"inputs": "x"}, headers=bearer(other)
    )
    assert answer.status_code == missing.status_code == 404


def test_unknown_agent_is_404_before_any_upstream_call(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Starting with an agent the tenant does not own answers 404 without calling Mistral."""
    answer = _start(key, {"inputs": "x", "agent_id": "ag_nobody"})
    assert answer.status_code == 404
    assert standin.calls()["conversations.start"] == 0


def test_token_budget_rejects_before_upstream(gateway: Container, standin: StandIn) -> None:
    """A tenant over its token budget gets 429 + Retry-After and nothing is sent."""
    poor = make_key(gateway, "user", owner="tenant-poor", token_budget_per_minute=50)
    answer = _start(poor, {"inputs": "x", "model": MODEL})
    assert answer.status_code == 429
    assert "Retry-After" in answer.headers
    assert standin.calls()["conversations.start"] == 0


def test_database_failure_after_mistral_answered_is_told_plainly(
    gateway: Container, key: NewKey, base_settings: Settings, standin: StandIn
) -> None:
    """If storing fails after Mistral answered, the caller gets the answer and Gateway-Stored."""
    with gateway.pool.connection() as conn:
        conn.run("ALTER TABLE usage_events ADD CONSTRAINT fail_once CHECK (status < 0) NOT VALID")
    try:
        answer = _start(key, {"inputs": "lost?", "model": MODEL})
    finally:
        with gateway.pool.connection() as conn:
            conn.run("ALTER TABLE usage_events DROP CONSTRAINT fail_once")
    assert answer.status_code == 200
    assert answer.headers["Gateway-Stored"] == "false"
    # Nothing half-written: the turn's transaction rolled back as a whole.
    assert _rows(gateway, "SELECT count(*) AS n FROM conversation_entries") == [{"n": 0}]


def _unstored_start(gateway: Container, key: NewKey, body: dict[str, Any]) -> Any:
    """A start Mistral answers and the database refuses (a constraint on usage_events)."""
    with gateway.pool.connection() as conn:
        conn.run("ALTER TABLE usage_events ADD CONSTRAINT fail_once CHECK (status < 0) NOT VALID")
    try:
        answer = _start(key, body)
    finally:
        with gateway.pool.connection() as conn:
            conn.run("ALTER TABLE usage_events DROP CONSTRAINT fail_once")
    assert answer.headers["Gateway-Stored"] == "false"
    return answer.get_json()


def test_unstored_start_is_stored_by_the_next_turn_on_it(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """The next append stores the conversation (and the lost turn's usage) instead of a 404."""
    first = _unstored_start(
        gateway, key, {"inputs": "remember me", "model": MODEL, "metadata": {"team": "blue"}}
    )
    conversation_id = first["conversation_id"]
    assert _rows(gateway, "SELECT id FROM conversations WHERE id = :id", id=conversation_id) == []
    answer = client("start").post(
        f"/v1/conversations/{conversation_id}", json={"inputs": "and now?"}, headers=bearer(key)
    )
    assert answer.status_code == 200
    assert "Gateway-Stored" not in answer.headers
    stored = _rows(
        gateway,
        "SELECT owner_id, model, metadata FROM conversations WHERE id = :id",
        id=conversation_id,
    )
    assert stored == [{"owner_id": "tenant-a", "model": MODEL, "metadata": {"team": "blue"}}]
    entries = _rows(
        gateway,
        "SELECT body FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
        id=conversation_id,
    )
    upstream = json.loads(_standin_get(standin, f"/v1/conversations/{conversation_id}/history"))
    assert [e["body"] for e in entries] == upstream["entries"]
    assert len(upstream["entries"]) == 4
    usage = _rows(
        gateway,
        "SELECT operation, prompt_tokens, completion_tokens FROM usage_events"
        " WHERE conversation_id = :id ORDER BY id",
        id=conversation_id,
    )
    assert usage[0] == {
        "operation": "conversations.start",
        "prompt_tokens": first["usage"]["prompt_tokens"],
        "completion_tokens": first["usage"]["completion_tokens"],
    }
    assert [u["operation"] for u in usage] == ["conversations.start", "conversations.append"]


def test_unstored_start_stays_another_tenants_404(
    gateway: Container, key: NewKey, standin: StandIn
) -> None:
    """Another tenant naming the unstored conversation gets 404, and the owner still can."""
    first = _unstored_start(gateway, key, {"inputs": "mine", "model": MODEL})
    conversation_id = first["conversation_id"]
    other = make_key(gateway, "user", owner="tenant-b")
    stolen = client("start").post(
        f"/v1/conversations/{conversation_id}", json={"inputs": "theirs"}, headers=bearer(other)
    )
    assert stolen.status_code == 404
    assert standin.calls()["conversations.append"] == 0
    mine = client("start").post(
        f"/v1/conversations/{conversation_id}", json={"inputs": "still mine"}, headers=bearer(key)
    )
    assert mine.status_code == 200
    owners = _rows(gateway, "SELECT owner_id FROM conversations WHERE id = :id", id=conversation_id)
    assert owners == [{"owner_id": "tenant-a"}]


def test_caller_leaving_mid_stream_stores_the_whole_turn_and_spares_the_breaker(
    gateway: Container, key: NewKey
) -> None:
    """A caller that disconnects mid-stream: the turn is read on and stored whole, and the
    breaker counts no failure."""
    answer = client("start").post(
        "/v1/conversations",
        headers=bearer(key),
        buffered=False,
        json={
            "inputs": "leave early",
            "model": MODEL,
            "stream": True,
            "completion_args": {"max_tokens": 50},
        },
    )
    received = b""
    for chunk in answer.response:
        received += chunk
        if b"message.output.delta" in received:
            break
    answer.close()
    conversation_id = json.loads(received.decode().split("data: ", 1)[1].split("\n", 1)[0])[
        "conversation_id"
    ]
    rows = _rows(
        gateway,
        "SELECT type, status FROM conversation_entries WHERE conversation_id = :id ORDER BY seq",
        id=conversation_id,
    )
    assert ("message.output", "complete") in [(r["type"], r["status"]) for r in rows]
    assert gateway.redis.get("gw:cb:mistral:failures") is None


def test_streamed_turn_writes_one_access_line_when_it_ends(gateway: Container, key: NewKey) -> None:
    """A stream's access line comes once, after the last event, with the turn's tokens."""
    from shared.observability import capture_logs, configure_logging

    configure_logging(gateway.settings)
    with capture_logs() as lines:
        answer = _start(key, {"inputs": "count me", "model": MODEL, "stream": True})
        text = answer.get_data(as_text=True)
    access = [line for line in lines if line.get("event") == "access"]
    assert "conversation.response.done" in text
    assert len(access) == 1
    assert access[0]["route"] == "/v1/conversations"
    assert access[0]["tokens_out"] > 0
    assert access[0]["conversation_id"].startswith("conv_")

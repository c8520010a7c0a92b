"""The batch function's apps, built by functions-framework, against real servers.

Messages go in as Pub/Sub push bodies and CloudEvents; Mistral is the stand-in,
whose call counts say how often each item reached it. The served-process tests
(a real functions-framework process, killed mid-batch) are in test_batch_served.py.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import flask
import functions_framework
import pytest

from devstack.standin import StandIn
from shared import batch
from shared.config import Settings
from shared.container import Container, set_container
from tests.support import ROOT, bearer, client, error_code, make_key

MODEL = "mistral-small-latest"
OWNER = "tenant-batch"
EVENTS = "/gateway/v1/batches/events"
SCHEMA = ROOT / "schemas" / "batch-message.schema.json"


# -- helpers -------------------------------------------------------------------------------


def items(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"row-{i}", "model": MODEL, "inputs": f"question {i}", **extra}
        for i in range(n)
    ]


def push_body(
    document: Any, message_id: str = "1001", published: datetime | None = None
) -> dict[str, Any]:
    """What a Pub/Sub push subscription posts for one message."""
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    when = published or datetime.now(UTC)
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "publishTime": when.isoformat().replace("+00:00", "Z"),
            "attributes": {"origin": "test"},
        },
        "subscription": "projects/p/subscriptions/gateway-batches-push",
    }


def post(body: dict[str, Any]) -> Any:
    return client("batch").post(EVENTS, json=body)


def rows(container: Container, sql: str, **params: Any) -> list[dict[str, Any]]:
    with container.pool.connection() as conn:
        return conn.all(sql, **params)


def item_rows(container: Container, batch_id: str) -> list[dict[str, Any]]:
    return rows(
        container,
        "SELECT idx, custom_id, status, conversation_id, result, error, attempts,"
        " started_at, finished_at FROM batch_items WHERE batch_id = :b ORDER BY idx",
        b=batch_id,
    )


def batch_row(container: Container, batch_id: str) -> dict[str, Any]:
    found = rows(container, "SELECT * FROM batches WHERE id = :b", b=batch_id)
    assert len(found) == 1, f"no batch {batch_id}"
    return found[0]


def standin_post(standin: StandIn, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the loopback stand-in
        standin.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
        return json.loads(reply.read())


# -- fixtures -----------------------------------------------------------------------------


def local_container(container: Container, settings: Settings) -> Container:
    return Container(settings, pool=container.pool, redis_client=container.redis)


_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))


def configure(base: Container, **values: Any) -> Container:
    """A container over `base`'s pool and Redis with these settings, installed for the test."""
    typed = {k: v for k, v in values.items() if k in _SETTINGS_FIELDS}
    local = local_container(base, dataclasses.replace(base.settings, **typed))
    set_container(local)  # `gateway` puts the session's container back afterwards
    return local


@pytest.fixture
def gateway(
    container: Container,
    base_settings: Settings,
    standin: StandIn,
) -> Iterator[Container]:
    """A container whose Mistral is the stand-in, over empty tables, and an owner with a key."""
    standin.reset()
    standin.latency_ms = 0
    previous = set_container(container)
    local = configure(
        container,
        mistral_server_url=standin.url,
        mistral_timeout_ms=5000,
        breaker_failure_threshold=1000,
        rate_limit_requests=10_000,
        batch_concurrency=8,
        batch_lease_s=2,
    )
    make_key(local, "user", owner=OWNER)
    yield local
    set_container(previous)


@pytest.fixture(scope="module")
def event_app() -> flask.Flask:
    """The Eventarc entry point (`handle_event`), as functions-framework serves it."""
    source = ROOT / "functions" / "batch" / "main.py"
    return functions_framework.create_app(target="handle_event", source=str(source))


# -- delivery and results --------------------------------------------------------------------


def test_push_delivery_runs_every_item_and_stores_its_result(
    gateway: Container, standin: StandIn
) -> None:
    """A push body's items each start one conversation, stored with the item's result."""
    answer = post(push_body({"batch_id": "b-push", "owner": OWNER, "items": items(3)}))
    assert answer.status_code == 200, answer.get_data()
    assert answer.get_json()["status"] == "succeeded"
    found = item_rows(gateway, "b-push")
    assert [r["status"] for r in found] == ["succeeded"] * 3
    assert [r["custom_id"] for r in found] == ["row-0", "row-1", "row-2"]
    for row in found:
        assert row["result"]["conversation_id"] == row["conversation_id"]
        assert row["result"]["outputs"][0]["type"] == "message.output"
        assert row["attempts"] == 1
    stored = rows(
        gateway,
        "SELECT id, owner_id, api_key_id, metadata FROM conversations ORDER BY metadata::text",
    )
    assert {r["id"] for r in stored} == {r["conversation_id"] for r in found}
    assert {r["owner_id"] for r in stored} == {OWNER}
    assert {r["api_key_id"] for r in stored} == {f"batch:{OWNER}"}
    assert [r["metadata"][batch.MARKER_KEY] for r in stored] == ["b-push:0", "b-push:1", "b-push:2"]
    assert standin.calls()["conversations.start"] == 3
    row = batch_row(gateway, "b-push")
    assert (row["status"], row["item_count"], row["message_id"]) == ("succeeded", 3, "1001")


def test_cloud_event_function_acks_binary_and_structured_events(
    gateway: Container, standin: StandIn, event_app: flask.Flask
) -> None:
    """The Eventarc entry point takes binary and structured CloudEvents and returns 200."""
    binary = push_body({"batch_id": "b-bin", "owner": OWNER, "items": items(2)}, "2001")
    answer = event_app.test_client().post(
        "/",
        json=binary,
        headers={
            "ce-id": "2001",
            "ce-type": batch.MESSAGE_PUBLISHED,
            "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
            "ce-specversion": "1.0",
        },
    )
    assert answer.status_code == 200, answer.get_data()
    structured = {
        "specversion": "1.0",
        "id": "2002",
        "type": batch.MESSAGE_PUBLISHED,
        "source": "//pubsub.googleapis.com/projects/p/topics/t",
        "datacontenttype": "application/json",
        "data": push_body({"batch_id": "b-str", "owner": OWNER, "items": items(2)}, "2002"),
    }
    answer = event_app.test_client().post(
        "/",
        data=json.dumps(structured),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert answer.status_code == 200, answer.get_data()
    for batch_id in ("b-bin", "b-str"):
        assert [r["status"] for r in item_rows(gateway, batch_id)] == ["succeeded"] * 2
    assert standin.calls()["conversations.start"] == 4


def test_unknown_agent_fails_alone(gateway: Container, standin: StandIn) -> None:
    """An item naming an agent the owner does not have fails; the others succeed."""
    message = items(3)
    message[1] = {"custom_id": "row-1", "agent_id": "ag_missing", "inputs": "hi"}
    answer = post(push_body({"batch_id": "b-agent", "owner": OWNER, "items": message}))
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "failed"
    found = item_rows(gateway, "b-agent")
    assert [r["status"] for r in found] == ["succeeded", "failed", "succeeded"]
    assert found[1]["error"]["code"] == "not_found"
    assert found[1]["error"]["status"] == 404
    assert found[1]["conversation_id"] is None
    assert batch_row(gateway, "b-agent")["error"]["items_failed"] == 1
    assert standin.calls()["conversations.start"] == 2


def test_mistral_rejection_fails_the_item_with_mistrals_error(
    gateway: Container, standin: StandIn
) -> None:
    """Mistral's own 4xx for one item is stored as that item's error; the others succeed."""
    standin.inject("status=400", count=1, operation="conversations.start")
    document = {"batch_id": "b-400", "owner": OWNER, "items": items(3)}
    configure(gateway, batch_concurrency=1)
    assert post(push_body(document)).status_code == 200
    found = item_rows(gateway, "b-400")
    assert [r["status"] for r in found] == ["failed", "succeeded", "succeeded"]
    assert found[0]["error"]["code"] == "upstream_rejected"
    assert found[0]["error"]["status"] == 400
    assert isinstance(found[0]["error"]["upstream"], dict)


def test_history_function_reads_the_batch_and_its_items(gateway: Container) -> None:
    """The owner reads the batch's status, per-status counts and each item's result."""
    message = items(2) + [{"custom_id": "bad", "agent_id": "ag_missing", "inputs": "x"}]
    assert post(push_body({"batch_id": "b-read", "owner": OWNER, "items": message})).status_code
    key = make_key(gateway, "read_only", owner=OWNER)
    got = client("history").get("/gateway/v1/batches/b-read", headers=bearer(key)).get_json()
    assert got["status"] == "failed"
    assert got["counts"] == {"pending": 0, "running": 0, "succeeded": 2, "failed": 1}
    listed = client("history").get("/gateway/v1/batches/b-read/items", headers=bearer(key))
    data = listed.get_json()["data"]
    assert [d["custom_id"] for d in data] == ["row-0", "row-1", "bad"]
    assert data[0]["result"]["conversation_id"] == data[0]["conversation_id"]
    assert data[2]["error"]["code"] == "not_found"
    other = make_key(gateway, "user", owner="someone-else")
    assert (
        client("history").get("/gateway/v1/batches/b-read", headers=bearer(other)).status_code
        == 404
    )


# -- refused messages: recorded and acknowledged ----------------------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"not json at all", "data"),
        ({"items": items(1)}, "data.owner"),
        ({"owner": OWNER, "items": []}, "data.items"),
        ({"owner": OWNER, "items": items(1) + items(1)}, "data.items.1.custom_id"),
        ({"owner": OWNER, "items": [{"custom_id": "a", "inputs": "x"}]}, "data.items.0"),
        ({"owner": OWNER, "items": items(1, stream=True)}, "data.items.0.stream"),
        ({"owner": OWNER, "batch_id": "a/b", "items": items(1)}, "data.batch_id"),
        (
            json.dumps({"owner": OWNER, "items": items(1, metadata={"s": "NAN"})})
            .replace('"NAN"', "NaN")
            .encode(),
            "data.items.0.metadata.s",
        ),
        (
            json.dumps({"owner": OWNER, "items": items(1, inputs=[{"content": "x", "w": "BIG"}])})
            .replace('"BIG"', "1e400")
            .encode(),
            "data.items.0.inputs.0.w",
        ),
    ],
)
def test_malformed_message_is_recorded_and_acknowledged(
    gateway: Container, standin: StandIn, document: Any, problem: str
) -> None:
    """A message that can never run is answered 200 (no redelivery) and stored as rejected."""
    answer = post(push_body(document, message_id="3001"))
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["status"], body["batch_id"]) == ("rejected", "msg_3001")
    row = batch_row(gateway, "msg_3001")
    assert row["status"] == "rejected"
    assert row["error"]["code"] == "malformed_message"
    assert problem in [".".join(str(p) for p in d["loc"]) for d in row["error"]["detail"]]
    assert sum(standin.calls().values()) == 0


def test_delivery_that_is_not_pubsub_is_recorded_and_acknowledged(gateway: Container) -> None:
    """A body without a Pub/Sub message is acknowledged and recorded under its digest."""
    answer = client("batch").post(EVENTS, data=b"{oops", content_type="application/json")
    assert answer.status_code == 200
    batch_id = answer.get_json()["batch_id"]
    assert batch_id.startswith("bad_")
    assert batch_row(gateway, batch_id)["error"]["code"] == "malformed_delivery"


def test_unknown_owner_is_recorded_and_acknowledged(gateway: Container, standin: StandIn) -> None:
    """An owner without a live key is refused once, recorded, and never retried."""
    document = {"batch_id": "b-who", "owner": "nobody", "items": items(2)}
    answer = post(push_body(document))
    assert answer.status_code == 200
    row = batch_row(gateway, "b-who")
    assert (row["status"], row["owner_id"], row["error"]["code"]) == (
        "rejected",
        "nobody",
        "unknown_owner",
    )
    assert rows(gateway, "SELECT * FROM batch_items") == []
    assert standin.calls()["conversations.start"] == 0


def test_a_disabled_tenants_batch_is_refused_like_an_unknown_owner(
    gateway: Container, standin: StandIn
) -> None:
    """Once an operator disables the tenant, its batch is recorded rejected, nothing runs."""
    with gateway.pool.transaction() as conn:
        conn.run("UPDATE tenants SET disabled = true WHERE id = :id", id=OWNER)
    answer = post(push_body({"batch_id": "b-off", "owner": OWNER, "items": items(2)}))
    assert answer.status_code == 200
    assert batch_row(gateway, "b-off")["error"]["code"] == "unknown_owner"
    assert standin.calls()["conversations.start"] == 0


def test_rejected_batch_id_can_be_published_again_once_fixed(gateway: Container) -> None:
    """The publisher's batch id of a refused message is free for its corrected republication."""
    post(push_body({"batch_id": "b-fix", "owner": OWNER, "items": [{"custom_id": "x"}]}, "41"))
    assert batch_row(gateway, "b-fix")["status"] == "rejected"
    answer = post(push_body({"batch_id": "b-fix", "owner": OWNER, "items": items(1)}, "42"))
    assert answer.get_json()["status"] == "succeeded"
    row = batch_row(gateway, "b-fix")
    assert (row["status"], row["error"], row["message_id"]) == ("succeeded", None, "42")


def test_expired_message_is_recorded_and_dropped(gateway: Container, standin: StandIn) -> None:
    """A message older than BATCH_MAX_AGE_S is recorded as expired, acknowledged, never run."""
    configure(gateway, batch_max_age_s=3600)
    old = datetime.now(UTC) - timedelta(hours=2)
    answer = post(push_body({"batch_id": "b-old", "owner": OWNER, "items": items(2)}, "5", old))
    assert answer.status_code == 200
    row = batch_row(gateway, "b-old")
    assert (row["status"], row["error"]["code"]) == ("rejected", "expired")
    assert row["published_at"] == old
    assert standin.calls()["conversations.start"] == 0


def test_batch_id_reused_for_other_items_is_a_conflict(
    gateway: Container, standin: StandIn
) -> None:
    """Another message reusing a batch id with different items is refused; the same items are
    the same batch (a republication) and run nothing again."""
    post(push_body({"batch_id": "b-dup", "owner": OWNER, "items": items(2)}, "61"))
    again = post(push_body({"batch_id": "b-dup", "owner": OWNER, "items": items(2)}, "62"))
    assert again.get_json()["status"] == "succeeded"
    other = post(push_body({"batch_id": "b-dup", "owner": OWNER, "items": items(3)}, "63"))
    assert other.status_code == 200
    assert other.get_json()["batch_id"] == "msg_63"
    assert batch_row(gateway, "msg_63")["error"]["code"] == "batch_conflict"
    assert batch_row(gateway, "b-dup")["item_count"] == 2
    assert standin.calls()["conversations.start"] == 2


# -- transient failures: answer so that Pub/Sub redelivers ------------------------------------


def test_database_outage_makes_both_entry_points_ask_for_redelivery(
    gateway: Container, event_app: flask.Flask
) -> None:
    """With PostgreSQL unreachable, a push gets 503 and the CloudEvent function raises (500)."""
    down = Settings(
        environment="test",
        database_url="postgresql://gateway:x@127.0.0.1:9/none",
        redis_url=gateway.settings.redis_url,
        mistral_server_url=gateway.settings.mistral_server_url,
        db_pool_timeout_ms=200,
    )
    dead = Container(down, redis_client=gateway.redis)
    previous = set_container(dead)
    try:
        body = push_body({"batch_id": "b-down", "owner": OWNER, "items": items(1)})
        answer = post(body)
        assert answer.status_code == 503
        assert error_code(answer.get_json()) == "service_unavailable"
        event = event_app.test_client().post(
            "/",
            json=body,
            headers={
                "ce-id": "1001",
                "ce-type": batch.MESSAGE_PUBLISHED,
                "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
                "ce-specversion": "1.0",
            },
        )
        assert event.status_code == 500
    finally:
        set_container(previous)
        dead.close()


def test_open_circuit_answers_503_and_the_redelivery_finishes(
    gateway: Container, standin: StandIn
) -> None:
    """Mistral failing opens the circuit: the delivery answers 503 with no item failed; the
    redelivery looks up the item that may have reached Mistral, then runs every item."""
    configure(
        gateway,
        batch_concurrency=1,
        breaker_failure_threshold=1,
        breaker_cooldown_s=1,
    )
    standin.inject("status=503", count=1, operation="conversations.start")
    body = push_body({"batch_id": "b-circuit", "owner": OWNER, "items": items(3)})
    first = post(body)
    assert first.status_code == 503
    assert error_code(first.get_json()) == "circuit_open"
    found = item_rows(gateway, "b-circuit")
    assert [r["status"] for r in found] == ["pending"] * 3
    # Item 0's start may have reached Mistral; the others were never sent.
    assert [r["attempts"] for r in found] == [1, 0, 0]
    assert batch_row(gateway, "b-circuit")["status"] == "running"
    time.sleep(1.1)
    second = post(body)
    assert second.status_code == 200
    assert second.get_json()["status"] == "succeeded"
    calls = standin.calls()
    assert calls["conversations.start"] == 4
    assert calls["conversations.list"] == 1


def test_rate_limited_items_wait_and_then_succeed(gateway: Container, standin: StandIn) -> None:
    """Items over the batch principal's request limit wait Retry-After instead of failing."""
    configure(gateway, batch_rate_limit_requests=2, batch_rate_limit_window=1)
    started = time.monotonic()
    answer = post(push_body({"batch_id": "b-limit", "owner": OWNER, "items": items(6)}))
    assert answer.get_json()["status"] == "succeeded"
    assert time.monotonic() - started >= 1.0
    assert standin.calls()["conversations.start"] == 6


# -- exactly once: takeovers and waits -------------------------------------------------------


def _seed(container: Container, batch_id: str, document: dict[str, Any], message_id: str) -> None:
    """Admit a batch the way a delivery does, without running it."""
    envelope = batch.envelope_from_http({}, json.dumps(push_body(document, message_id)).encode())
    message = batch.parse_message(envelope)
    from shared.batch import _store

    with container.pool.transaction() as conn:
        assert _store.admit(conn, message, message_id, None) is None


def _hold(container: Container, batch_id: str, idx: int, lease_s: float) -> None:
    """Make an item look claimed by another worker, with a lease of `lease_s` from now."""
    with container.pool.connection() as conn:
        conn.run(
            "UPDATE batch_items SET status = 'running', attempts = 1, started_at = now(),"
            " lease_until = now() + make_interval(secs => :s) WHERE batch_id = :b AND idx = :i",
            b=batch_id,
            i=idx,
            s=float(lease_s),
        )


def test_takeover_records_the_conversation_an_earlier_claim_made(
    gateway: Container, standin: StandIn
) -> None:
    """An item whose earlier claim died after Mistral answered is recorded from Mistral, and one
    whose conversation was already stored is recorded from the database: no second start."""
    document = {"batch_id": "b-take", "owner": OWNER, "items": items(3)}
    _seed(gateway, "b-take", document, "71")
    # Item 0: Mistral made the conversation; the worker died before storing anything.
    made = standin_post(
        standin,
        "/v1/conversations",
        {"model": MODEL, "inputs": "question 0", "metadata": {batch.MARKER_KEY: "b-take:0"}},
    )
    # Item 1: the conversation was stored too; the worker died before marking the item.
    with gateway.pool.connection() as conn:
        conn.run(
            "INSERT INTO conversations (id, owner_id, model, metadata, created_at, updated_at)"
            " VALUES ('conv_stored', :o, :m, CAST(:md AS jsonb), now(), now())",
            o=OWNER,
            m=MODEL,
            md=json.dumps({batch.MARKER_KEY: "b-take:1"}),
        )
    _hold(gateway, "b-take", 0, -1)
    _hold(gateway, "b-take", 1, -1)
    before = standin.calls()
    answer = post(push_body(document, "71"))
    assert answer.get_json()["status"] == "succeeded"
    found = item_rows(gateway, "b-take")
    assert [r["conversation_id"] for r in found[:2]] == [made["conversation_id"], "conv_stored"]
    assert [r["attempts"] for r in found] == [2, 2, 1]
    assert found[0]["result"]["gateway_reconciled"] is True
    assert found[0]["result"]["outputs"][0]["type"] == "message.output"
    calls = standin.calls()
    assert calls["conversations.start"] - before["conversations.start"] == 1  # item 2 only
    assert calls["conversations.list"] - before["conversations.list"] == 1  # item 0 only
    entries = rows(
        gateway,
        "SELECT type FROM conversation_entries WHERE conversation_id = :c ORDER BY seq",
        c=made["conversation_id"],
    )
    assert [e["type"] for e in entries] == ["message.input", "message.output"]


def test_item_held_by_a_live_lease_is_waited_for_not_run_again(
    gateway: Container, standin: StandIn
) -> None:
    """A delivery finding an item another worker holds waits for it to finish and runs it not."""
    document = {"batch_id": "b-wait", "owner": OWNER, "items": items(2)}
    _seed(gateway, "b-wait", document, "81")
    _hold(gateway, "b-wait", 0, 30)

    def other_worker_finishes() -> None:
        time.sleep(0.8)
        with gateway.pool.connection() as conn:
            conn.run(
                "UPDATE batch_items SET status = 'succeeded', conversation_id = 'conv_other',"
                " result = '{}', finished_at = now() WHERE batch_id = 'b-wait' AND idx = 0"
            )

    finisher = threading.Thread(target=other_worker_finishes)
    finisher.start()
    started = time.monotonic()
    answer = post(push_body(document, "81"))
    finisher.join()
    assert answer.get_json()["status"] == "succeeded"
    assert time.monotonic() - started >= 0.8
    assert item_rows(gateway, "b-wait")[0]["conversation_id"] == "conv_other"
    assert standin.calls()["conversations.start"] == 1


def test_lease_is_renewed_while_mistral_is_slower_than_the_lease(
    gateway: Container, standin: StandIn
) -> None:
    """A 1 s lease outlives a 2.5 s call because its worker renews it: a concurrent duplicate
    delivery waits instead of taking the item over and calling Mistral again."""
    configure(gateway, batch_lease_s=1)
    standin.inject("latency=2500", count=1, operation="conversations.start")
    body = push_body({"batch_id": "b-slow", "owner": OWNER, "items": items(1)})
    answers: list[int] = []

    def deliver() -> None:
        answers.append(post(body).status_code)

    first = threading.Thread(target=deliver)
    first.start()
    time.sleep(0.3)
    deliver()
    first.join()
    assert answers == [200, 200]
    assert standin.calls()["conversations.start"] == 1
    assert item_rows(gateway, "b-slow")[0]["attempts"] == 1


def test_expired_redelivery_finishes_a_started_batch_without_starting_items(
    gateway: Container, standin: StandIn
) -> None:
    """Past BATCH_MAX_AGE_S, a batch already admitted is closed: finished items stay, items
    never run fail as expired, and nothing new reaches Mistral."""
    configure(gateway, batch_max_age_s=60)
    document = {"batch_id": "b-late", "owner": OWNER, "items": items(3)}
    _seed(gateway, "b-late", document, "91")
    with gateway.pool.connection() as conn:
        conn.run(
            "UPDATE batch_items SET status = 'succeeded', conversation_id = 'conv_done',"
            " result = '{}', finished_at = now() WHERE batch_id = 'b-late' AND idx = 0"
        )
    old = datetime.now(UTC) - timedelta(minutes=5)
    answer = post(push_body(document, "91", old))
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "failed"
    found = item_rows(gateway, "b-late")
    assert [r["status"] for r in found] == ["succeeded", "failed", "failed"]
    assert [r["error"]["code"] for r in found[1:]] == ["expired", "expired"]
    assert sum(standin.calls().values()) == 0


def test_items_run_concurrently_within_the_bound(gateway: Container, standin: StandIn) -> None:
    """40 items, Mistral answering in 200 ms, bound 10: about 0.8 s, never more than 10 at once."""
    configure(gateway, batch_concurrency=10)
    standin.inject("latency=200", count=40, operation="conversations.start")
    started = time.monotonic()
    answer = post(push_body({"batch_id": "b-par", "owner": OWNER, "items": items(40)}))
    elapsed = time.monotonic() - started
    assert answer.get_json()["status"] == "succeeded"
    assert 0.8 <= elapsed < 4.0, elapsed
    spans = [(r["started_at"], r["finished_at"]) for r in item_rows(gateway, "b-par")]
    edges = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert 8 <= peak <= 10, peak
    assert standin.calls()["conversations.start"] == 40


# -- the published contract -------------------------------------------------------------------


def test_schema_file_states_the_validators_contract() -> None:
    """The JSON Schema names the fields the validator checks, and its examples are accepted."""
    schema = json.loads(Path(SCHEMA).read_text())
    assert tuple(schema["properties"]) == batch.MESSAGE_FIELDS
    assert schema["required"] == ["owner", "items"]
    assert schema["additionalProperties"] is False
    item = schema["$defs"]["item"]
    assert set(batch.ITEM_FIELDS) <= set(item["properties"])
    assert schema["properties"]["items"]["maxItems"] == batch.MAX_ITEMS
    for n, example in enumerate(schema["examples"]):
        envelope = batch.envelope_from_http({}, json.dumps(push_body(example, str(n))).encode())
        message = batch.parse_message(envelope)
        assert len(message.items) == len(example["items"])

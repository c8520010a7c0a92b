"""The history function: reads from the gateway's database, scoped to the caller's tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import cursors
from shared.container import Container, set_container
from shared.db import Conn
from shared.http import routes
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

OWNER = "tenant-a"
OTHER = "tenant-b"
MODEL = "mistral-small-latest"
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SENTINEL = json.dumps("~?~unset~?~sentinel~?~")


# -- seeding: rows as the start and batch functions store them -----------------------------------


def add_agent(conn: Conn, agent_id: str, owner: str = OWNER) -> None:
    conn.run(
        "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
        " VALUES (:id, :owner, :id, :model, '{}', :t, :t)",
        id=agent_id,
        owner=owner,
        model=MODEL,
        t=T0,
    )


def _jsonb(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def add_conversation(
    conn: Conn,
    conversation_id: str,
    *,
    owner: str = OWNER,
    created_at: datetime = T0,
    agent_id: str | None = None,
    agent_version: str | None = None,
    model: str | None = None,
    status: str = "active",
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    instructions: str | None = None,
    tools: list[Any] | None = None,
    completion_args: dict[str, Any] | None = None,
    guardrails: list[Any] | None = None,
) -> None:
    conn.run(
        """
        INSERT INTO conversations (
            id, owner_id, agent_id, agent_version, model, name, description, status, metadata,
            instructions, tools, completion_args, guardrails, created_at, updated_at)
        VALUES (
            :id, :owner, :agent_id, :agent_version, :model, :name, :description, :status,
            CAST(:metadata AS jsonb), :instructions, CAST(:tools AS jsonb),
            CAST(:completion_args AS jsonb), CAST(:guardrails AS jsonb),
            :created_at, :updated_at)
        """,
        id=conversation_id,
        owner=owner,
        agent_id=agent_id,
        agent_version=agent_version,
        model=model if model is not None or agent_id is not None else MODEL,
        name=name,
        description=description,
        status=status,
        metadata=_jsonb(metadata),
        instructions=instructions,
        tools=_jsonb(tools),
        completion_args=_jsonb(completion_args),
        guardrails=_jsonb(guardrails),
        created_at=created_at,
        updated_at=created_at + timedelta(seconds=5),
    )


def add_entries(
    conn: Conn,
    conversation_id: str,
    bodies: Sequence[dict[str, Any]],
    *,
    owner: str = OWNER,
    first_seq: int = 0,
) -> None:
    for seq, body in enumerate(bodies, first_seq):
        conn.run(
            "INSERT INTO conversation_entries"
            " (conversation_id, seq, id, owner_id, type, body, prompt_tokens, created_at)"
            " VALUES (:cid, :seq, :id, :owner, :type, CAST(:body AS jsonb), :tokens, :t)",
            cid=conversation_id,
            seq=seq,
            id=body["id"],
            owner=owner,
            type=body["type"],
            body=json.dumps(body),
            tokens=seq * 10,
            t=T0 + timedelta(seconds=seq),
        )


def message(entry_id: str, kind: str = "message.input", content: str = "hi") -> dict[str, Any]:
    body: dict[str, Any] = {"object": "entry", "type": kind, "id": entry_id, "content": content}
    body["role"] = "user" if kind == "message.input" else "assistant"
    return body


def add_batch(
    conn: Conn,
    batch_id: str,
    statuses: Sequence[str],
    *,
    owner: str = OWNER,
    created_at: datetime = T0,
) -> None:
    conn.run(
        "INSERT INTO batches (id, owner_id, message_id, status, item_count, created_at, updated_at)"
        " VALUES (:id, :owner, :message_id, 'running', :count, :t, :t)",
        id=batch_id,
        owner=owner,
        message_id=f"msg-{batch_id}",
        count=len(statuses),
        t=created_at,
    )
    for idx, status in enumerate(statuses):
        done = status in ("succeeded", "failed")
        conn.run(
            "INSERT INTO batch_items (batch_id, idx, owner_id, custom_id, status, request,"
            " conversation_id, result, error, attempts)"
            " VALUES (:batch_id, :idx, :owner, :custom_id, :status, '{}', :cid,"
            " CAST(:result AS jsonb), CAST(:error AS jsonb), :attempts)",
            batch_id=batch_id,
            idx=idx,
            owner=owner,
            custom_id=f"item-{idx}",
            status=status,
            cid=f"conv_{batch_id}_{idx}" if status == "succeeded" else None,
            result=_jsonb({"outputs": [idx]} if status == "succeeded" else None),
            error=_jsonb({"message": "upstream 400"} if status == "failed" else None),
            attempts=1 if done else 0,
        )


@pytest.fixture
def key(container: Container) -> NewKey:
    return make_key(container, "user", OWNER, rate_limit_requests=10_000)


@pytest.fixture
def other_key(container: Container) -> NewKey:
    return make_key(container, "user", OTHER, rate_limit_requests=10_000)


def get(key: NewKey, path: str, **query: Any) -> Any:
    return client("history").get(path, headers=bearer(key), query_string=query)


def ok(key: NewKey, path: str, **query: Any) -> Any:
    answer = get(key, path, **query)
    assert answer.status_code == 200, answer.get_json()
    assert answer.mimetype == "application/json"
    return answer.get_json()


def problems(answer: Any) -> list[tuple[tuple[Any, ...], str]]:
    """The (loc, type) pairs of a 422 answer, after checking its documented shape."""
    assert answer.status_code == 422
    body = answer.get_json()
    assert error_code(body) == "validation_error"
    assert isinstance(body["detail"], list)
    for entry in body["detail"]:
        assert set(entry) == {"loc", "msg", "type"}
        assert isinstance(entry["msg"], str)
    return [(tuple(d["loc"]), d["type"]) for d in body["detail"]]


def walk(key: NewKey, path: str, limit: int, between: Any = None, **query: Any) -> list[Any]:
    """Every item of a gateway listing, page by page; `between(page_number)` runs between pages."""
    seen: list[Any] = []
    cursor: str | None = None
    for number in range(1000):
        params = {**query, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = ok(key, path, **params)
        assert page["object"] == "list"
        assert len(page["data"]) <= limit
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert page["data"], "a page with a next cursor is never empty"
        if between is not None:
            between(number)
    raise AssertionError("the walk did not end")


# -- Mistral-compatible reads --------------------------------------------------------------------


def test_get_answers_a_model_conversation_in_mistral_shape(
    container: Container, key: NewKey
) -> None:
    """A model conversation's record has the model fields, RFC 3339 `Z` times, and no status."""
    tools = [{"type": "web_search"}]
    with container.pool.connection() as conn:
        add_conversation(
            conn,
            "conv_m",
            model=MODEL,
            name="n",
            description="d",
            metadata={"team": "a"},
            instructions="be brief",
            tools=tools,
            completion_args={"temperature": 0.2},
            guardrails=[{"block_on_error": True}],
            created_at=datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC),
        )
    assert ok(key, "/v1/conversations/conv_m") == {
        "object": "conversation",
        "id": "conv_m",
        "created_at": "2025-06-01T12:00:00.123000Z",
        "updated_at": "2025-06-01T12:00:05.123000Z",
        "name": "n",
        "description": "d",
        "metadata": {"team": "a"},
        "model": MODEL,
        "instructions": "be brief",
        "tools": tools,
        "completion_args": {"temperature": 0.2},
        "guardrails": [{"block_on_error": True}],
    }


def test_get_answers_an_agent_conversation_without_model_fields(
    container: Container, key: NewKey
) -> None:
    """An agent conversation carries agent_id and a numeric version, never `model`."""
    with container.pool.connection() as conn:
        add_agent(conn, "ag_1")
        add_conversation(conn, "conv_a", agent_id="ag_1", agent_version="3", model=MODEL)
    record = ok(key, "/v1/conversations/conv_a")
    assert record["agent_id"] == "ag_1"
    assert record["agent_version"] == 3
    assert "model" not in record
    assert "tools" not in record


def test_history_serves_stored_bodies_verbatim_in_order(container: Container, key: NewKey) -> None:
    """History returns every body in seq order, unknown fields and entry types included."""
    bodies = [
        message("msg_1"),
        {**message("msg_2", "message.output"), "x_future_field": {"kept": [1, 2]}},
        {"object": "entry", "type": "message.thinking", "id": "th_1", "thought": "hmm"},
        message("msg_3"),
    ]
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_h")
        # Stored out of order on purpose: the answer follows seq, not insertion.
        add_entries(conn, "conv_h", bodies[2:], first_seq=2)
        add_entries(conn, "conv_h", bodies[:2])
    assert ok(key, "/v1/conversations/conv_h/history") == {
        "object": "conversation.history",
        "conversation_id": "conv_h",
        "entries": bodies,
    }


def test_messages_keep_only_message_entries(container: Container, key: NewKey) -> None:
    """Messages list the message.input and message.output entries only, in order."""
    call = {"object": "entry", "type": "function.call", "id": "fc_1", "tool_call_id": "c1"}
    call |= {"name": "f", "arguments": "{}"}
    result = {"object": "entry", "type": "function.result", "id": "fr_1", "tool_call_id": "c1"}
    result |= {"result": "ok"}
    bodies = [message("msg_1"), call, result, message("msg_2", "message.output")]
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_x")
        add_entries(conn, "conv_x", bodies)
    answer = ok(key, "/v1/conversations/conv_x/messages")
    assert answer["object"] == "conversation.messages"
    assert answer["conversation_id"] == "conv_x"
    assert answer["messages"] == [bodies[0], bodies[3]]


def test_a_conversation_without_entries_has_an_empty_history(
    container: Container, key: NewKey
) -> None:
    """An existing conversation with no entries answers an empty list, not 404."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_empty")
    assert ok(key, "/v1/conversations/conv_empty/history")["entries"] == []
    assert ok(key, "/v1/conversations/conv_empty/messages")["messages"] == []


def test_mistral_list_is_an_array_newest_first_by_page(container: Container, key: NewKey) -> None:
    """The list is a bare array, newest first, paged by page and page_size."""
    with container.pool.connection() as conn:
        for i in range(5):
            add_conversation(conn, f"conv_{i}", created_at=T0 + timedelta(minutes=i))
    everything = ok(key, "/v1/conversations")
    assert [c["id"] for c in everything] == ["conv_4", "conv_3", "conv_2", "conv_1", "conv_0"]
    assert all(c["object"] == "conversation" for c in everything)
    pages = [ok(key, "/v1/conversations", page=p, page_size=2) for p in range(4)]
    assert [[c["id"] for c in p] for p in pages] == [
        ["conv_4", "conv_3"],
        ["conv_2", "conv_1"],
        ["conv_0"],
        [],
    ]


def test_mistral_list_filters_by_a_metadata_object(container: Container, key: NewKey) -> None:
    """A JSON-object metadata filter keeps conversations whose metadata contains it."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_a", metadata={"team": "a", "env": "prod"})
        add_conversation(conn, "conv_b", metadata={"team": "b"}, created_at=T0 + timedelta(1))
        add_conversation(conn, "conv_n", created_at=T0 + timedelta(2))
    found = ok(key, "/v1/conversations", metadata=json.dumps({"team": "a"}))
    assert [c["id"] for c in found] == ["conv_a"]
    assert ok(key, "/v1/conversations", metadata=json.dumps({"team": "c"})) == []


@pytest.mark.parametrize(
    "metadata", [SENTINEL, "null", "[1]", "not json", "{}", '"text"', "[" * 100_000]
)
def test_mistral_list_ignores_metadata_that_is_not_an_object(
    container: Container, key: NewKey, metadata: str
) -> None:
    """The SDK's sentinel and any other non-object metadata mean no filter (contract 9.2.1)."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_a", metadata={"team": "a"})
        add_conversation(conn, "conv_b", created_at=T0 + timedelta(1))
    assert [c["id"] for c in ok(key, "/v1/conversations", metadata=metadata)] == [
        "conv_b",
        "conv_a",
    ]


def test_archived_conversations_stay_readable_and_deleted_ones_vanish(
    container: Container, key: NewKey
) -> None:
    """Archived conversations are listed and readable; deleted ones are 404 and never listed."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_live")
        add_conversation(conn, "conv_arch", status="archived", created_at=T0 + timedelta(1))
        add_conversation(conn, "conv_gone", status="deleted", created_at=T0 + timedelta(2))
        add_entries(conn, "conv_gone", [message("msg_g")])
    assert [c["id"] for c in ok(key, "/v1/conversations")] == ["conv_arch", "conv_live"]
    assert ok(key, "/v1/conversations/conv_arch")["id"] == "conv_arch"
    gateway_ids = [c["id"] for c in ok(key, "/gateway/v1/conversations")["data"]]
    assert gateway_ids == ["conv_arch", "conv_live"]
    for suffix in ("", "/history", "/messages"):
        assert get(key, "/v1/conversations/conv_gone" + suffix).status_code == 404
    assert get(key, "/gateway/v1/conversations/conv_gone/entries").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"page_size": "0"}, [(("query", "page_size"), "greater_than_equal")]),
        ({"page_size": "ten"}, [(("query", "page_size"), "int_parsing")]),
        ({"page_size": "1.5"}, [(("query", "page_size"), "int_parsing")]),
        ({"page": "-1"}, [(("query", "page"), "greater_than_equal")]),
        ({"page": "-" + "9" * 40}, [(("query", "page"), "greater_than_equal")]),
        ({"page": " 1"}, [(("query", "page"), "int_parsing")]),
        (
            {"page": "x", "page_size": "ten"},
            [(("query", "page"), "int_parsing"), (("query", "page_size"), "int_parsing")],
        ),
    ],
)
def test_mistral_list_rejects_bad_paging_with_422(
    container: Container, key: NewKey, query: dict[str, str], expected: list[Any]
) -> None:
    """Bad page or page_size is a 422 whose detail names every bad parameter (a page_size
    above 1000 is served, as Mistral serves it: see test_fidelity)."""
    assert problems(get(key, "/v1/conversations", **query)) == expected


@pytest.mark.parametrize("suffix", ["", "/history", "/messages"])
def test_unknown_conversation_is_404(container: Container, key: NewKey, suffix: str) -> None:
    """An id the tenant never had answers 404 in the gateway's error shape."""
    answer = get(key, "/v1/conversations/conv_nope" + suffix)
    assert answer.status_code == 404
    assert error_code(answer.get_json()) == "not_found"


# -- the gateway's conversation list -------------------------------------------------------------


@pytest.fixture
def catalogue(container: Container) -> None:
    """Six conversations across two agents, two models, both statuses and two teams."""
    with container.pool.connection() as conn:
        add_agent(conn, "ag_1")
        add_agent(conn, "ag_2")
        rows: list[dict[str, Any]] = [
            {"agent_id": "ag_1", "metadata": {"team": "a"}},
            {"agent_id": "ag_2", "status": "archived"},
            {"model": "small", "metadata": {"team": "a", "env": "prod"}},
            {"model": "large", "metadata": {"team": "b"}},
            {"agent_id": "ag_1", "status": "archived", "metadata": {"team": "b"}},
            {"model": "small"},
        ]
        for i, row in enumerate(rows):
            add_conversation(conn, f"conv_{i}", created_at=T0 + timedelta(days=i), **row)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [5, 4, 3, 2, 1, 0]),
        ({"agent_id": "ag_1"}, [4, 0]),
        ({"model": "small"}, [5, 2]),
        ({"status": "archived"}, [4, 1]),
        ({"status": "active"}, [5, 3, 2, 0]),
        ({"created_after": "2025-06-02T12:00:00Z"}, [5, 4, 3, 2]),
        ({"created_before": "2025-06-03T12:00:00+00:00"}, [1, 0]),
        (
            {"created_after": "2025-06-02T13:00:00+01:00", "created_before": "2025-06-05T12:00Z"},
            [3, 2],
        ),
        ({"metadata": '{"team": "a"}'}, [2, 0]),
        ({"metadata": '{"team": "b"}', "status": "active"}, [3]),
        ({"agent_id": "ag_1", "status": "active", "metadata": '{"team": "a"}'}, [0]),
        ({"agent_id": "ag_9"}, []),
    ],
)
def test_gateway_list_filters(
    catalogue: None, key: NewKey, query: dict[str, str], expected: list[int]
) -> None:
    """Each filter, alone and combined, keeps exactly the matching conversations, newest first."""
    page = ok(key, "/gateway/v1/conversations", **query)
    assert [c["id"] for c in page["data"]] == [f"conv_{i}" for i in expected]
    assert page["next_cursor"] is None


def test_gateway_list_records_add_status_to_mistral_records(catalogue: None, key: NewKey) -> None:
    """A gateway record is the Mistral record plus the conversation's status."""
    (record,) = ok(key, "/gateway/v1/conversations", agent_id="ag_2")["data"]
    assert record == {**ok(key, "/v1/conversations/conv_1"), "status": "archived"}


def test_gateway_list_walk_sees_every_row_once_while_rows_are_inserted(
    container: Container, key: NewKey
) -> None:
    """A keyset walk returns each existing row exactly once though rows land mid-walk."""
    with container.pool.connection() as conn:
        # Three conversations share each timestamp: the id breaks the tie.
        for i in range(30):
            add_conversation(conn, f"conv_{i:02d}", created_at=T0 + timedelta(seconds=i // 3))
    original = {f"conv_{i:02d}" for i in range(30)}

    def insert_some(page_number: int) -> None:
        with container.pool.connection() as conn:
            # Newer than anything (ahead of the walk), older than anything (still to come),
            # and on a timestamp the walk is in the middle of.
            add_conversation(conn, f"new_{page_number}", created_at=T0 + timedelta(days=1))
            add_conversation(conn, f"old_{page_number}", created_at=T0 - timedelta(days=1))
            add_conversation(conn, f"tie_{page_number}", created_at=T0 + timedelta(seconds=5))

    ids = [c["id"] for c in walk(key, "/gateway/v1/conversations", 4, insert_some)]
    assert len(ids) == len(set(ids)), "no row is returned twice"
    assert original <= set(ids), "no existing row is skipped"
    assert not any(i.startswith("new_") for i in ids), "rows behind the cursor stay unseen"
    assert "old_0" in ids, "a row inserted ahead of the cursor is reached"


def test_gateway_list_pages_end_without_an_empty_page(container: Container, key: NewKey) -> None:
    """A listing of exactly `limit` rows gives one page whose next_cursor is null."""
    with container.pool.connection() as conn:
        for i in range(3):
            add_conversation(conn, f"conv_{i}", created_at=T0 + timedelta(seconds=i))
    page = ok(key, "/gateway/v1/conversations", limit=3)
    assert len(page["data"]) == 3
    assert page["next_cursor"] is None
    first = ok(key, "/gateway/v1/conversations", limit=2)
    assert first["next_cursor"] is not None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"limit": "0"}, [(("query", "limit"), "greater_than_equal")]),
        ({"limit": "1001"}, [(("query", "limit"), "less_than_equal")]),
        ({"limit": "lots"}, [(("query", "limit"), "int_parsing")]),
        ({"status": "deleted"}, [(("query", "status"), "enum")]),
        ({"created_after": "yesterday"}, [(("query", "created_after"), "datetime_parsing")]),
        # A date-time without a timezone is refused, never guessed.
        (
            {"created_before": "2025-06-01T12:00"},
            [(("query", "created_before"), "datetime_parsing")],
        ),
        ({"created_before": "2025-06-01"}, [(("query", "created_before"), "datetime_parsing")]),
        ({"metadata": "[1, 2]"}, [(("query", "metadata"), "dict_type")]),
        ({"metadata": "{team"}, [(("query", "metadata"), "json_invalid")]),
        ({"metadata": '{"a": "\\u0000"}'}, [(("query", "metadata"), "value_error")]),
        ({"metadata": '{"a": "\\ud800"}'}, [(("query", "metadata"), "value_error")]),
        ({"metadata": '{"a": 1e999}'}, [(("query", "metadata"), "value_error")]),
        ({"metadata": '{"a":' * 40 + "1" + "}" * 40}, [(("query", "metadata"), "value_error")]),
        ({"metadata": "[" * 100_000}, [(("query", "metadata"), "json_invalid")]),
        ({"metadata": json.dumps({"k": "v" * 5000})}, [(("query", "metadata"), "value_error")]),
        ({"agent_id": "ag\x00"}, [(("query", "agent_id"), "string")]),
        ({"model": "m" * 257}, [(("query", "model"), "string")]),
        ({"cursor": "not a cursor!"}, [(("query", "cursor"), "cursor_invalid")]),
        (
            {"limit": "-5", "status": "gone", "cursor": "AAAA"},
            [
                (("query", "cursor"), "cursor_invalid"),
                (("query", "status"), "enum"),
                (("query", "limit"), "greater_than_equal"),
            ],
        ),
    ],
)
def test_gateway_list_rejects_bad_input_with_422(
    container: Container, key: NewKey, query: dict[str, str], expected: list[Any]
) -> None:
    """Bad filters, limits and cursors are one 422 listing every problem, never a 500."""
    assert problems(get(key, "/gateway/v1/conversations", **query)) == expected


@pytest.mark.parametrize(
    "cursor",
    [
        cursors.encode("entries", 3),  # another listing's cursor
        cursors.encode("conversations", "2025-06-01", "conv_1"),  # a naive datetime
        cursors.encode("conversations", T0),  # too short
        cursors.encode("conversations", T0, 7),  # an id that is not text
        cursors.encode("conversations", T0, "conv\x00"),  # text PostgreSQL refuses
        cursors.encode("conversations", T0, "c")[:-3],  # truncated
        cursors.encode("conversations", T0, "c") + "A",  # one character too many
    ],
)
def test_gateway_list_rejects_tampered_cursors_with_422(
    container: Container, key: NewKey, cursor: str
) -> None:
    """A cursor that this listing did not hand out is a 422 on query.cursor."""
    answer = get(key, "/gateway/v1/conversations", cursor=cursor)
    assert problems(answer) == [(("query", "cursor"), "cursor_invalid")]


# -- entries -------------------------------------------------------------------------------------


def test_entries_page_in_history_order_with_usage_and_the_verbatim_body(
    container: Container, key: NewKey
) -> None:
    """Each entry item carries seq, status and tokens around Mistral's body, unchanged."""
    bodies = [message("msg_1"), {**message("msg_2", "message.output"), "extra": True}]
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_e")
        add_entries(conn, "conv_e", bodies)
    page = ok(key, "/gateway/v1/conversations/conv_e/entries")
    assert page["next_cursor"] is None
    assert page["data"][1] == {
        "object": "conversation.entry",
        "seq": 1,
        "id": "msg_2",
        "type": "message.output",
        "status": "complete",
        "prompt_tokens": 10,
        "completion_tokens": 0,
        "created_at": "2025-06-01T12:00:01.000000Z",
        "entry": bodies[1],
    }


def test_entries_walk_sees_every_entry_once_while_entries_are_appended(
    container: Container, key: NewKey
) -> None:
    """Paging entries by cursor returns each in seq order, once, with appends showing at the end."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_e")
        add_entries(conn, "conv_e", [message(f"msg_{i}") for i in range(10)])
    appended = iter(range(10, 20))

    def append_one(_page: int) -> None:
        seq = next(appended)
        with container.pool.connection() as conn:
            add_entries(conn, "conv_e", [message(f"msg_{seq}")], first_seq=seq)

    items = walk(key, "/gateway/v1/conversations/conv_e/entries", 3, append_one)
    seqs = [item["seq"] for item in items]
    assert seqs == list(range(len(seqs)))
    assert len(seqs) > 10


def test_entries_reject_bad_limits_and_cursors(container: Container, key: NewKey) -> None:
    """Entries validate limit and cursor like every gateway listing."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_e")
    path = "/gateway/v1/conversations/conv_e/entries"
    assert problems(get(key, path, limit="0")) == [(("query", "limit"), "greater_than_equal")]
    bad_cursors = [cursors.encode("entries", 2**31), cursors.encode("entries", True), "e30"]
    for cursor in bad_cursors:
        assert problems(get(key, path, cursor=cursor)) == [(("query", "cursor"), "cursor_invalid")]


# -- batches -------------------------------------------------------------------------------------


def test_batch_answers_counts_per_item_status(container: Container, key: NewKey) -> None:
    """A batch shows its fields and how many items are in each status, zeros included."""
    with container.pool.connection() as conn:
        add_batch(conn, "batch_1", ["succeeded", "failed", "succeeded", "running"])
    batch = ok(key, "/gateway/v1/batches/batch_1")
    assert batch["object"] == "batch"
    assert batch["id"] == "batch_1"
    assert batch["status"] == "running"
    assert batch["item_count"] == 4
    assert batch["message_id"] == "msg-batch_1"
    assert batch["created_at"] == "2025-06-01T12:00:00.000000Z"
    assert batch["counts"] == {"pending": 0, "running": 1, "succeeded": 2, "failed": 1}


def test_batch_items_page_by_index_with_results_and_errors(
    container: Container, key: NewKey
) -> None:
    """Items come in index order with their result or error, filterable by status."""
    statuses = ["succeeded", "failed", "pending", "succeeded", "succeeded"]
    with container.pool.connection() as conn:
        add_batch(conn, "batch_1", statuses)
    items = walk(key, "/gateway/v1/batches/batch_1/items", 2)
    assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
    assert items[0]["result"] == {"outputs": [0]}
    assert items[0]["conversation_id"] == "conv_batch_1_0"
    assert items[1]["error"] == {"message": "upstream 400"}
    assert items[1]["custom_id"] == "item-1"
    succeeded = walk(key, "/gateway/v1/batches/batch_1/items", 2, status="succeeded")
    assert [i["index"] for i in succeeded] == [0, 3, 4]
    assert problems(get(key, "/gateway/v1/batches/batch_1/items", status="done")) == [
        (("query", "status"), "enum")
    ]


def test_batches_list_newest_first_by_cursor(container: Container, key: NewKey) -> None:
    """The tenant's batches are listed newest first, each exactly once across pages."""
    with container.pool.connection() as conn:
        for i in range(5):
            add_batch(conn, f"batch_{i}", ["pending"], created_at=T0 + timedelta(hours=i // 2))
    ids = [b["id"] for b in walk(key, "/gateway/v1/batches", 2)]
    assert ids == ["batch_4", "batch_3", "batch_2", "batch_1", "batch_0"]
    bad = cursors.encode("conversations", T0, "x")
    assert problems(get(key, "/gateway/v1/batches", cursor=bad)) == [
        (("query", "cursor"), "cursor_invalid")
    ]


@pytest.mark.parametrize("suffix", ["", "/items"])
def test_unknown_batch_is_404(container: Container, key: NewKey, suffix: str) -> None:
    """A batch id the tenant never had answers 404."""
    assert get(key, "/gateway/v1/batches/batch_nope" + suffix).status_code == 404


# -- tenants, roles, and no upstream -------------------------------------------------------------


@pytest.fixture
def first_tenants_data(container: Container) -> None:
    """A conversation with an entry and a batch, owned by the first tenant."""
    with container.pool.connection() as conn:
        add_conversation(conn, "conv_a", metadata={"team": "a"})
        add_entries(conn, "conv_a", [message("msg_1")])
        add_batch(conn, "batch_a", ["succeeded"])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/conversations/conv_a",
        "/v1/conversations/conv_a/history",
        "/v1/conversations/conv_a/messages",
        "/gateway/v1/conversations/conv_a/entries",
        "/gateway/v1/batches/batch_a",
        "/gateway/v1/batches/batch_a/items",
    ],
)
def test_another_tenant_gets_404_for_the_first_tenants_objects(
    first_tenants_data: None, key: NewKey, other_key: NewKey, path: str
) -> None:
    """The owner reads its object; another tenant's key gets 404, exactly as for a missing one."""
    assert get(key, path).status_code == 200
    answer = get(other_key, path)
    assert answer.status_code == 404
    assert error_code(answer.get_json()) == "not_found"


def test_lists_never_show_another_tenants_objects(
    first_tenants_data: None, key: NewKey, other_key: NewKey
) -> None:
    """Every listing is empty for a tenant that owns nothing, and full for the owner."""
    team = json.dumps({"team": "a"})
    for k, expected in ((key, 1), (other_key, 0)):
        assert len(ok(k, "/v1/conversations")) == expected
        assert len(ok(k, "/v1/conversations", metadata=team)) == expected
        assert len(ok(k, "/gateway/v1/conversations")["data"]) == expected
        assert len(ok(k, "/gateway/v1/conversations", metadata=team)["data"]) == expected
        assert len(ok(k, "/gateway/v1/batches")["data"]) == expected


def _read_paths() -> list[str]:
    paths = []
    for route in routes.routes_for("history"):
        if route.operation in ("gateway.health", "gateway.openapi"):
            continue
        paths.append(route.template.format(conversation_id="conv_a", batch_id="batch_a"))
    return paths


@pytest.mark.parametrize("path", _read_paths())
def test_read_only_keys_may_use_every_read_route(
    first_tenants_data: None, container: Container, path: str
) -> None:
    """A read_only key gets 200 on every route the history function owns."""
    reader = make_key(container, "read_only", OWNER)
    assert get(reader, path).status_code == 200


class _NoUpstream:
    """A Mistral client that fails the test if anything touches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the history function used the Mistral client ({name})")


@pytest.fixture
def without_upstream(container: Container) -> Iterator[None]:
    isolated = Container(
        container.settings,
        pool=container.pool,
        redis_client=container.redis,
        mistral=_NoUpstream(),
    )
    previous = set_container(isolated)
    yield
    set_container(previous)


@pytest.mark.parametrize("path", _read_paths())
def test_reads_answer_with_no_upstream_at_all(
    first_tenants_data: None, key: NewKey, without_upstream: None, path: str
) -> None:
    """Every read answers 200 with no Mistral reachable and the client booby-trapped."""
    assert get(key, path).status_code == 200

"""How a turn reaches the database (shared.conversations.store.save_turn), on the real PostgreSQL.

A turn that creates its conversation is stored in one statement; one that extends a
conversation in one transaction. Either way the conversation, its entries and the
usage event are written together or not at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.container import Container
from shared.conversations import store
from shared.db import Conn

OWNER = "tenant-storage"


def _event(conversation_id: str, usage: store.Usage | None = None) -> store.UsageEvent:
    return store.UsageEvent(
        owner=OWNER,
        key_id="key-1",
        operation="conversations.start",
        status=200,
        usage=usage or store.Usage(7, 11),
        agent_id=None,
        model="mistral-small-latest",
        conversation_id=conversation_id,
    )


def _entries(n: int, prefix: str = "e") -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [
        {"object": "entry", "type": "message.input", "id": f"{prefix}-in", "role": "user"}
        | {"content": "hello", "created_at": "2026-11-28T09:00:00Z"}
    ]
    for i in range(n - 1):
        entries.append(
            {"object": "entry", "type": "message.output", "id": f"{prefix}-out-{i}"}
            | {"role": "assistant", "content": [{"type": "text", "text": f"part {i}"}]}
            | {"created_at": "2026-11-28T09:00:01Z", "completed_at": "2026-11-28T09:00:02Z"}
            | {"an_unknown_field": {"kept": True}}
        )
    return entries


def _stored(container: Container, conversation_id: str) -> dict[str, Any]:
    with container.pool.connection() as conn:
        conversation = conn.one(
            "SELECT owner_id, model, metadata, parent_entry_id FROM conversations WHERE id = :id",
            id=conversation_id,
        )
        entries = conn.all(
            "SELECT seq, id, body, prompt_tokens, completion_tokens FROM conversation_entries"
            " WHERE conversation_id = :id ORDER BY seq",
            id=conversation_id,
        )
        usage = conn.all(
            "SELECT prompt_tokens, completion_tokens FROM usage_events WHERE conversation_id = :id",
            id=conversation_id,
        )
    return {"conversation": conversation, "entries": entries, "usage": usage}


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the pool sends, in order."""
    sent: list[str] = []
    original = Conn.run

    def run(self: Conn, sql: str, **params: Any) -> list[list[Any]]:
        sent.append(sql)
        return original(self, sql, **params)

    monkeypatch.setattr(Conn, "run", run)
    return sent


def test_a_new_conversation_is_stored_in_one_statement(
    container: Container, statements: list[str]
) -> None:
    new = {"model": "mistral-small-latest", "metadata": {"team": "a"}}
    store.save_turn(container.pool, event=_event("conv-one"), entries=_entries(3), new=new)
    assert len(statements) == 1, statements
    got = _stored(container, "conv-one")
    assert got["conversation"] == {
        "owner_id": OWNER,
        "model": "mistral-small-latest",
        "metadata": {"team": "a"},
        "parent_entry_id": None,
    }
    assert [e["id"] for e in got["entries"]] == ["e-in", "e-out-0", "e-out-1"]
    assert [e["seq"] for e in got["entries"]] == [0, 1, 2]
    # Prompt tokens on the first input, completion tokens on the last output.
    assert [(e["prompt_tokens"], e["completion_tokens"]) for e in got["entries"]] == [
        (7, 0),
        (0, 0),
        (0, 11),
    ]
    assert got["entries"][1]["body"] == _entries(3)[1]
    assert got["usage"] == [{"prompt_tokens": 7, "completion_tokens": 11}]


def test_an_append_is_one_transaction_of_five_statements(
    container: Container, statements: list[str]
) -> None:
    new = {"model": "mistral-small-latest"}
    store.save_turn(container.pool, event=_event("conv-app"), entries=_entries(2), new=new)
    statements.clear()
    history = _entries(2) + _entries(2, prefix="f")
    store.save_turn(container.pool, event=_event("conv-app", store.Usage(3, 4)), entries=history)
    # START, lock, known ids, entries + touch + usage, COMMIT
    assert len(statements) == 5, statements
    got = _stored(container, "conv-app")
    assert [e["id"] for e in got["entries"]] == ["e-in", "e-out-0", "f-in", "f-out-0"]
    assert [e["seq"] for e in got["entries"]] == [0, 1, 2, 3]
    assert [(e["prompt_tokens"], e["completion_tokens"]) for e in got["entries"]][2:] == [
        (3, 0),
        (0, 4),
    ]
    assert sorted(u["prompt_tokens"] for u in got["usage"]) == [3, 7]


def test_storing_a_created_conversation_again_adds_nothing_twice(container: Container) -> None:
    """The one-statement path writes nothing when the conversation exists; the turn then
    goes the append way, so entries are not duplicated and the usage event is written once."""
    new = {"model": "mistral-small-latest"}
    store.save_turn(container.pool, event=_event("conv-again"), entries=_entries(2), new=new)
    store.save_turn(container.pool, event=_event("conv-again"), entries=_entries(3), new=new)
    got = _stored(container, "conv-again")
    assert [e["id"] for e in got["entries"]] == ["e-in", "e-out-0", "e-out-1"]
    assert len(got["usage"]) == 2


def test_a_refused_entry_leaves_nothing_of_the_turn(container: Container) -> None:
    """An entry the database refuses: the conversation, entries and usage all stay out."""
    entries = _entries(3)
    entries[2]["content"] = "refuse me"
    with container.pool.connection() as conn:
        conn.run(
            "ALTER TABLE conversation_entries ADD CONSTRAINT refuse_one"
            " CHECK (content IS DISTINCT FROM 'refuse me') NOT VALID"
        )
    try:
        with pytest.raises(Exception, match="refuse_one"):
            store.save_turn(
                container.pool,
                event=_event("conv-bad"),
                entries=entries,
                new={"model": "mistral-small-latest"},
            )
    finally:
        with container.pool.connection() as conn:
            conn.run("ALTER TABLE conversation_entries DROP CONSTRAINT refuse_one")
    got = _stored(container, "conv-bad")
    assert got == {"conversation": None, "entries": [], "usage": []}
    # The connection the statement failed on is still good for the next turn.
    store.save_turn(
        container.pool,
        event=_event("conv-good"),
        entries=_entries(2),
        new={"model": "mistral-small-latest"},
    )
    assert len(_stored(container, "conv-good")["entries"]) == 2


@pytest.mark.parametrize(
    "odd",
    ["bad\x00text", "lone \ud800 half", float("nan"), float("inf")],
    ids=["NUL", "surrogate", "NaN", "Infinity"],
)
def test_an_entry_postgres_cannot_hold_is_stored_marked_unstorable(
    container: Container, odd: Any
) -> None:
    """A value jsonb refuses is replaced and its entry marked, and the turn is stored whole."""
    entries = _entries(3)
    entries[2]["content"] = odd
    entries[2]["extra"] = {"score": odd}
    store.save_turn(
        container.pool,
        event=_event("conv-odd"),
        entries=entries,
        new={"model": "mistral-small-latest", "metadata": {"odd": odd}},
    )
    got = _stored(container, "conv-odd")
    assert [e["id"] for e in got["entries"]] == ["e-in", "e-out-0", "e-out-1"]
    assert len(got["usage"]) == 1
    with container.pool.connection() as conn:
        rows = conn.all(
            "SELECT status FROM conversation_entries WHERE conversation_id = 'conv-odd'"
            " ORDER BY seq"
        )
    assert [r["status"] for r in rows] == ["complete", "complete", "unstorable"]


def test_a_restart_records_where_it_branched_from(container: Container) -> None:
    store.save_turn(
        container.pool,
        event=_event("conv-branch"),
        entries=_entries(2),
        new={"model": "mistral-small-latest"},
        parent=("conv-source", "e-out-0"),
    )
    got = _stored(container, "conv-branch")
    assert got["conversation"]["parent_entry_id"] == "e-out-0"


def test_a_turn_not_kept_records_only_its_usage(container: Container) -> None:
    store.save_turn(
        container.pool, event=_event("conv-unkept"), entries=_entries(2), new={}, stores=False
    )
    got = _stored(container, "conv-unkept")
    assert got["conversation"] is None
    assert got["entries"] == []
    assert got["usage"] == [{"prompt_tokens": 7, "completion_tokens": 11}]


def test_every_column_of_a_stored_entry_holds_its_value_and_type(container: Container) -> None:
    """Text content lands in `content` (chunks NULL), chunked content in `content_json`
    (text NULL), times as timestamptz, absent fields as SQL NULL, tokens as integers,
    the whole entry as `body`: whatever one statement carries them in."""
    entries = _entries(2, prefix="cols")
    store.save_turn(container.pool, event=_event("conv-cols"), entries=entries, new={"model": "m"})
    with container.pool.connection() as conn:
        rows = conn.all(
            "SELECT seq, id, type, role, content, content_json, body, agent_id, tool_name,"
            " status, created_at, completed_at, pg_typeof(created_at)::text AS created_type,"
            " content_json IS NULL AS no_chunks, completed_at IS NULL AS open,"
            " prompt_tokens + completion_tokens AS tokens"
            " FROM conversation_entries WHERE conversation_id = 'conv-cols' ORDER BY seq"
        )
    first, second = rows
    assert (first["type"], first["role"], first["content"], first["no_chunks"]) == (
        "message.input",
        "user",
        "hello",
        True,
    )
    assert first["created_at"].isoformat() == "2026-11-28T09:00:00+00:00"
    assert first["open"]
    assert (first["agent_id"], first["tool_name"]) == (None, None)
    assert first["created_type"] == "timestamp with time zone"
    assert second["content"] is None
    assert second["content_json"] == [{"type": "text", "text": "part 0"}]
    assert second["completed_at"].isoformat() == "2026-11-28T09:00:02+00:00"
    assert second["body"] == entries[1]
    assert [r["status"] for r in rows] == ["complete", "complete"]
    assert sum(r["tokens"] for r in rows) == 18

"""In-progress records (shared.db.in_progress) and named database errors, on real PostgreSQL."""

from __future__ import annotations

import pytest

from shared.container import Container
from shared.db import Pool, connector_for, in_progress
from shared.errors import Conflict, UniqueViolation


def _busy() -> Conflict:
    return Conflict("busy", code="agent_busy")


def _records(container: Container) -> list[dict[str, object]]:
    with container.pool.connection() as conn:
        return conn.all("SELECT key, holder, operation FROM writes_in_progress ORDER BY key")


def test_a_record_is_held_for_the_block_and_ended_by_its_last_transaction(
    container: Container,
) -> None:
    """The record exists (naming the request) while the block runs, and goes with the
    transaction that finishes it; no connection is held in between."""
    # One connection: were the record holding it, the block could not take it.
    pool = Pool(connector_for(container.settings), size=1, timeout_s=0.3)
    with in_progress(pool, "agent:t:a1", "agents.update", _busy, request_id="req_1") as record:
        (held,) = _records(container)
        assert held["key"] == "agent:t:a1"
        assert str(held["holder"]).startswith("req_1/")
        with pool.transaction() as conn:
            record.finish(conn)
        assert _records(container) == []
    assert _records(container) == []
    pool.close()


def test_a_second_write_to_the_same_key_is_refused_while_the_first_is_in_progress(
    container: Container,
) -> None:
    """The second claimant waits briefly, then gets the caller's busy error; another key
    is free; a block that failed leaves no record behind."""
    pool = container.pool
    with pytest.raises(RuntimeError), in_progress(pool, "agent:t:a1", "agents.update", _busy):
        with pytest.raises(Conflict) as refused, in_progress(pool, "agent:t:a1", "x", _busy):
            pass
        assert refused.value.code == "agent_busy"
        with in_progress(pool, "agent:t:a2", "agents.delete", _busy):
            assert len(_records(container)) == 2
        raise RuntimeError("the write failed")
    assert _records(container) == []


def test_a_record_whose_lease_ran_out_is_taken_over(container: Container) -> None:
    """A holder that died leaves a record; once its lease is over the next write takes it."""
    pool = container.pool
    with pool.transaction() as conn:
        conn.run(
            "INSERT INTO writes_in_progress (key, holder, operation, lease_until)"
            " VALUES ('agent:t:a1', 'dead/1', 'agents.update', now() - interval '1 second')"
        )
    with in_progress(pool, "agent:t:a1", "agents.delete", _busy, request_id="req_2"):
        (held,) = _records(container)
        assert str(held["holder"]).startswith("req_2/")
        assert held["operation"] == "agents.delete"
    assert _records(container) == []


def test_a_duplicate_row_is_a_named_gateway_error(container: Container) -> None:
    """PostgreSQL's unique violation reaches callers as UniqueViolation (a 409), not SQLSTATE."""
    with container.pool.transaction() as conn:
        conn.run("INSERT INTO batches (id, owner_id, status) VALUES ('b1', 'o1', 'pending')")
    with pytest.raises(UniqueViolation) as raised, container.pool.transaction() as conn:
        conn.run("INSERT INTO batches (id, owner_id, status) VALUES ('b1', 'o1', 'pending')")
    assert raised.value.status == 409

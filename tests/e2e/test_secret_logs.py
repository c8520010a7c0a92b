"""A gateway key sent where it does not belong never shows in the local stack's output."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest

from devstack.stack import StackInfo
from shared.tenancy.keys import NewKey


def test_a_key_in_a_query_string_is_not_in_any_log(
    stack: StackInfo, user_key: NewKey, tmp_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`?key=mgw_...` and a key as a path id: the router's request lines and every
    function's log file hold the request, never the key."""
    secret = user_key.secret
    with caplog.at_level("INFO", logger="werkzeug"):
        for path in (f"/v1/conversations?key={secret}", f"/v1/conversations/{secret}"):
            answer = httpx2.get(
                stack.url + path, headers={"Authorization": f"Bearer {secret}"}, timeout=10
            )
            assert secret not in answer.text
        time.sleep(0.5)  # the functions' log lines are written as the answer leaves
    router_lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/v1/conversations?key=mgw_" in line for line in router_lines)
    logs = {p.name: p.read_text() for p in (tmp_root / "stack").glob("*.log")}
    assert "history.log" in logs
    assert "/v1/conversations" in logs["history.log"]
    assert not [name for name, text in logs.items() if secret in text]
    assert not [line for line in router_lines if secret in line]

"""`python -m gatewayctl` against the whole local stack, one subprocess per command.

URL and key come from the stack's `stack.json` (as beside `make run`), the environment,
or flags; each subcommand's answer is compared with the HTTP API's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import ROOT, StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key

TENANT = "cli-co"
MODEL = "mistral-small-latest"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def operator(stack_container: Container) -> NewKey:
    with stack_container.pool.transaction() as conn:
        return create_key(conn, owner_id="cli-ops", name="cli operator", role="operator")


@pytest.fixture(scope="module")
def admin(stack_container: Container) -> NewKey:
    with stack_container.pool.transaction() as conn:
        return create_key(conn, owner_id=TENANT, name="cli admin", role="admin")


@pytest.fixture
def run(stack: StackInfo, tmp_root: Path) -> Run:
    """gatewayctl in a subprocess, beside the test stack's stack.json, no GATEWAY_* set."""

    def call(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> Any:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        clean["GATEWAY_STATE_DIR"] = str(tmp_root / "stack")
        done = subprocess.run(
            [sys.executable, "-m", "gatewayctl", *args],
            env={**clean, **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return call


def _http(stack: StackInfo, method: str, path: str, key: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(stack.url + path, data=data, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read() or b"null")


def _status(stack: StackInfo, path: str, key: str) -> int:
    try:
        _http(stack, "GET", path, key)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


# -- where the URL and key come from -------------------------------------------------------------


def test_url_and_key_come_from_stack_json_beside_make_run(run: Run, stack: StackInfo) -> None:
    """With no flag and no environment, the stack's URL and bootstrap admin key are used."""
    me = json.loads(run("whoami").stdout)
    assert (me["owner_id"], me["role"]) == ("default", "admin")
    assert me["key_id"] == _http(stack, "GET", "/gateway/v1/whoami", stack.admin_key)["key_id"]


def test_the_environment_beats_stack_json_and_a_flag_beats_both(
    run: Run, stack: StackInfo, admin: NewKey
) -> None:
    """GATEWAY_URL/GATEWAY_KEY override stack.json; --key overrides GATEWAY_KEY."""
    env = {"GATEWAY_URL": stack.url, "GATEWAY_KEY": admin.secret}
    assert json.loads(run("whoami", env=env).stdout)["owner_id"] == TENANT
    flagged = run("--key", stack.admin_key, "whoami", env=env)
    assert json.loads(flagged.stdout)["owner_id"] == "default"


def test_a_refused_key_exits_1_with_the_gateways_message(run: Run) -> None:
    """An unknown key: exit status 1 and the 401's message, no traceback."""
    done = run("--key", "mgw_" + "z" * 43, "whoami", ok=False)
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_gateway_anywhere_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    """Without flags, environment or a stack file, exit status 2 says what to give."""
    done = run("whoami", env={"GATEWAY_STATE_DIR": str(tmp_path)}, ok=False)
    assert done.returncode == 2
    assert "GATEWAY_URL" in done.stderr


# -- tenants and keys ------------------------------------------------------------------------------


def test_tenants_create_get_update_and_list(run: Run, operator: NewKey) -> None:
    """An operator makes a tenant, renames and disables it; list and get show it."""
    op = ("--key", operator.secret)
    made = json.loads(
        run(
            *op, "tenants", "create", "cli-new", "--name", "New", "--token-budget-per-day", "9"
        ).stdout
    )
    assert (made["id"], made["name"], made["token_budget_per_day"]) == ("cli-new", "New", 9)
    run(*op, "tenants", "update", "cli-new", "--name", "Renamed", "--disable")
    got = json.loads(run(*op, "tenants", "get", "cli-new").stdout)
    assert (got["name"], got["disabled"]) == ("Renamed", True)
    listed = json.loads(run(*op, "tenants", "list", "--json").stdout)
    assert "cli-new" in [t["id"] for t in listed]
    table = run(*op, "tenants", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["id", "name", "disabled"]
    assert any(line.split()[:3] == ["cli-new", "Renamed", "True"] for line in table)


def test_keys_create_update_rotate_with_grace_and_revoke(
    run: Run, stack: StackInfo, operator: NewKey
) -> None:
    """Each key verb does what the API says: the rotated key's old secret works in its grace."""
    op = ("--key", operator.secret)
    made = json.loads(
        run(*op, "keys", "create", "--name", "cli", "--role", "user", "--owner", TENANT).stdout
    )
    key_id, first = made["key"]["id"], made["secret"]
    assert _http(stack, "GET", "/gateway/v1/whoami", first)["owner_id"] == TENANT
    listed = run(*op, "keys", "list", "--owner", TENANT).stdout
    assert any(line.startswith(key_id) for line in listed.splitlines())
    updated = json.loads(run(*op, "keys", "update", key_id, "--rate-limit-requests", "5").stdout)
    assert updated["rate_limit_requests"] == 5
    rotated = json.loads(run(*op, "keys", "rotate", key_id, "--grace", "600").stdout)
    assert rotated["key"]["previous_secret_expires_at"] is not None
    assert _status(stack, "/gateway/v1/whoami", rotated["secret"]) == 200
    assert _status(stack, "/gateway/v1/whoami", first) == 200
    revoked = json.loads(run(*op, "keys", "revoke", key_id).stdout)
    assert revoked["revoked_at"] is not None


def test_models_lists_the_ids_an_operator_may_allow_a_key(
    run: Run, stack: StackInfo, operator: NewKey, admin: NewKey
) -> None:
    """An operator's `models` is the models list (--json the API's answer, else a table of ids),
    and an id from it set as a key's allowed model narrows that key's list to it."""
    op = ("--key", operator.secret)
    listed = json.loads(run(*op, "models", "--json").stdout)
    assert listed == _http(stack, "GET", "/v1/models", operator.secret)
    table = run(*op, "models").stdout.splitlines()
    assert table[0].split()[:2] == ["id", "type"]
    ids = [line.split()[0] for line in table[1:]]
    assert ids == [card["id"] for card in listed["data"]]
    # The tenant's admin (the fixture makes the tenant) allows one of them to a new key.
    narrowing = ("--name", "narrow", "--role", "user", "--allow-model", ids[1])
    made = json.loads(run("--key", admin.secret, "keys", "create", *narrowing).stdout)
    narrow = json.loads(run("--key", made["secret"], "models", "--json").stdout)
    assert [card["id"] for card in narrow["data"]] == [ids[1]]


# -- usage and audit -------------------------------------------------------------------------------


def test_usage_as_json_is_the_apis_and_as_a_table_ends_with_totals(
    run: Run, stack: StackInfo, admin: NewKey
) -> None:
    """--json prints the usage answer itself; the table has a row per group and a total."""
    _http(stack, "POST", "/v1/conversations", admin.secret, {"model": MODEL, "inputs": "count me"})
    key = ("--key", admin.secret)
    printed = json.loads(run(*key, "usage", "--group-by", "day,model", "--json").stdout)
    api = _http(stack, "GET", "/gateway/v1/usage?group_by=day,model", admin.secret)
    assert printed == api
    lines = run(*key, "usage", "--group-by", "model").stdout.splitlines()
    assert lines[0].split() == [
        "model",
        "requests",
        "failed_requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "pages",
        "audio_seconds",
    ]
    assert lines[-1].split()[:2] == ["total", str(api["totals"]["requests"])]


def test_audit_lists_the_tenants_actions_newest_first(
    run: Run, operator: NewKey, admin: NewKey
) -> None:
    """A key made in the tenant shows as key.create, newest first, in JSON and the table."""
    made = json.loads(
        run(
            "--key", admin.secret, "keys", "create", "--name", "audited", "--role", "read_only"
        ).stdout
    )
    rows = json.loads(run("--key", operator.secret, "audit", "--tenant", TENANT, "--json").stdout)
    assert rows[0]["action"] == "key.create"
    assert rows[0]["target_id"] == made["key"]["id"]
    times = [r["created_at"] for r in rows]
    assert times == sorted(times, reverse=True)
    text = run("--key", admin.secret, "audit", "--action", "key.create").stdout
    assert made["key"]["id"] in text


# -- conversations ---------------------------------------------------------------------------------


def test_conversations_export_writes_one_json_line_per_conversation_with_entries(
    run: Run, stack: StackInfo, stack_container: Container, tmp_path: Path
) -> None:
    """Each stored conversation of the tenant is one line holding its record and entries."""
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id="cli-export", name="export", role="user")
    started = [
        _http(stack, "POST", "/v1/conversations", key.secret, {"model": MODEL, "inputs": f"n{i}"})
        for i in range(3)
    ]
    out = tmp_path / "export.jsonl"
    run("--key", key.secret, "conversations", "export", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(s["conversation_id"] for s in started)
    for record in lines:
        assert [e["type"] for e in record["entries"]] == ["message.input", "message.output"]
    only = run("--key", key.secret, "conversations", "export", "--no-entries").stdout
    assert all("entries" not in json.loads(line) for line in only.splitlines())


# -- batches ---------------------------------------------------------------------------------------


def test_a_batch_runs_locally_to_completion(run: Run, stack: StackInfo, tmp_path: Path) -> None:
    """`batch submit` posts to the local batch function, follows it, and it succeeds."""
    message = {
        "batch_id": "cli-batch-1",
        "items": [{"custom_id": f"r{i}", "model": MODEL, "inputs": f"item {i}"} for i in range(4)],
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(message))
    done = run("batch", "submit", str(path))
    assert "cli-batch-1: succeeded, 4/4 finished, 0 failed" in done.stdout
    batch = _http(stack, "GET", "/gateway/v1/batches/cli-batch-1", stack.admin_key)
    assert (batch["status"], batch["item_count"]) == ("succeeded", 4)
    status = json.loads(run("batch", "status", "cli-batch-1").stdout)
    assert status["status"] == "succeeded"


def test_a_batch_with_a_failing_item_exits_1_naming_it(
    run: Run, stack: StackInfo, tmp_path: Path
) -> None:
    """An item naming an agent the tenant lacks fails alone; the command names it, exits 1."""
    message = {
        "batch_id": "cli-batch-2",
        "items": [
            {"custom_id": "good", "model": MODEL, "inputs": "fine"},
            {"custom_id": "bad", "agent_id": "ag_nobody", "inputs": "x"},
        ],
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(message))
    done = run("batch", "submit", str(path), ok=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2/2 finished, 1 failed" in done.stdout
    assert "(bad)" in done.stdout


def test_publishing_without_the_pubsub_client_says_what_to_install(
    run: Run, tmp_path: Path
) -> None:
    """--topic needs google-cloud-pubsub, which the gateway does not depend on: exit 2."""
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"items": []}))
    done = run("batch", "submit", str(path), "--topic", "projects/p/topics/t", ok=False)
    assert done.returncode == 2
    assert "google-cloud-pubsub" in done.stderr


# -- the newcomer's first key ----------------------------------------------------------------------


def test_readmes_first_key_command_works_beside_make_run(
    stack: StackInfo, tmp_root: Path, tmp_path: Path
) -> None:
    """`python -m shared.tenancy create-admin` finds the local stack's database by itself."""
    (tmp_path / ".local").mkdir()
    shutil.copy(tmp_root / "stack" / "stack.json", tmp_path / ".local" / "stack.json")
    unset = ("DATABASE_URL", "REDIS_URL", "DB_HOST", "CLOUD_SQL_INSTANCE", "GATEWAY_STATE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    done = subprocess.run(
        [sys.executable, "-m", "shared.tenancy", "create-admin", "--owner", "newcomer"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    me = _http(stack, "GET", "/gateway/v1/whoami", done.stdout.strip())
    assert (me["owner_id"], me["role"]) == ("newcomer", "admin")
    assert "local stack" in done.stderr

"""The SDK inventory and its classification (shared.surface) against the installed SDK."""

from __future__ import annotations

import pytest

from shared.surface import OPERATIONS_FILE, Treatment, not_exposed, operations
from shared.surface.__main__ import DOC_FILE, render_doc, render_inventory
from shared.surface.treatments import RULES, rule_for


@pytest.fixture(scope="module")
def inventory() -> str:
    return render_inventory()


def test_inventory_is_what_the_installed_sdk_has(inventory: str) -> None:
    assert OPERATIONS_FILE.read_text() == inventory, "run python -m shared.surface"


def test_the_doc_table_is_generated_from_the_same_rules(inventory: str) -> None:
    assert DOC_FILE.read_text() == render_doc(inventory), "run python -m shared.surface"


def test_the_walk_finds_every_sdk_method() -> None:
    # 302 SDK methods (sync ones), two of which name one operation twice (events, workflows.events).
    ops = operations()
    assert len(ops) + sum(len(op.aliases) for op in ops) == 302
    assert {"chat.complete", "beta.libraries.documents.upload", "files.upload"} <= {
        op.name for op in ops
    }


def test_every_sdk_operation_is_classified() -> None:
    unclassified = [op.name for op in operations() if rule_for(op.name) is None]
    assert unclassified == []


def test_an_operation_no_rule_covers_is_reported() -> None:
    assert rule_for("brand_new_namespace.create") is None
    assert rule_for("chatty.complete") is None  # a prefix is a whole name segment


def test_every_rule_covers_some_operation() -> None:
    names = [op.name for op in operations()]
    unused = [rule.prefix for rule in RULES if not any(rule.covers(name) for name in names)]
    assert unused == []


def test_the_most_specific_rule_wins() -> None:
    treatments = {op.name: op.treatment for op in operations()}
    assert treatments["models.list"] is Treatment.SHARED_READ
    assert treatments["models.delete"] is Treatment.NOT_EXPOSED
    assert treatments["agents.complete"] is Treatment.METERED
    assert treatments["beta.agents.create"] is Treatment.STORED


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/users/me", "beta.users.get_identity"),
        ("DELETE", "/v1/models/ft:open-mistral-7b:abc", "models.delete"),
        ("get", "/v1/workflows/runs/r1", "workflows.runs.get_run"),
        ("POST", "/v1/chat/completions", None),
        ("GET", "/v1/models/mistral-small-latest", None),
        ("GET", "/v1/nothing-mistral-has", None),
    ],
)
def test_not_exposed_names_the_sdk_operation(method: str, path: str, expected: str | None) -> None:
    assert not_exposed(method, path) == expected

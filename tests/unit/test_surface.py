"""The SDK inventory and its classification (shared.surface) against the installed SDK."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.http import routes
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
        # a literal segment wins over a parameter: not workflows.get_workflow
        ("GET", "/v1/workflows/runs", "workflows.runs.list_runs"),
        ("POST", "/v1/chat/completions", None),
        ("GET", "/v1/models/mistral-small-latest", None),
        ("GET", "/v1/nothing-mistral-has", None),
    ],
)
def test_not_exposed_names_the_sdk_operation(method: str, path: str, expected: str | None) -> None:
    assert not_exposed(method, path) == expected


def test_no_served_sdk_operation_is_taken_for_a_not_exposed_one() -> None:
    """Each operation of another treatment, routed or not yet, is never named not_exposed."""
    named = {
        op.name: not_exposed(op.method, re.sub(r"\{[A-Za-z_]+\}", "x1", op.path))
        for op in operations()
        if op.treatment is not Treatment.NOT_EXPOSED
    }
    assert {name: found for name, found in named.items() if found} == {}


def _template(path: str) -> str:
    """A path template with its parameter names dropped: `{agent_id}` and `{id}` are one."""
    return re.sub(r"\{[A-Za-z_]+\}", "{}", path)


def unrecorded_routes(
    treatments: frozenset[Treatment], table: tuple[routes.Route, ...] = routes.ROUTES
) -> list[str]:
    """What keeps the route table and the SDK's surface apart, for the given treatments:
    each SDK operation so treated without a route of its method and path, and each
    Mistral route whose method and path is no SDK operation of those treatments."""
    by_call = {(r.method, _template(r.template)): r for r in table if r.mistral}
    sdk = {(op.method, _template(op.path)): op for op in operations()}
    problems = [
        f"{op.name}: no route for {op.method} {op.path}"
        for op in operations()
        if op.treatment in treatments and (op.method, _template(op.path)) not in by_call
    ]
    for call, route in by_call.items():
        op = sdk.get(call)
        if op is None:
            problems.append(f"route {route.operation}: no SDK operation is {' '.join(call)}")
        elif op.treatment not in treatments:
            problems.append(f"route {route.operation}: {op.name} is {op.treatment.value}")
    return problems


# Every treatment but not_exposed is served.
ROUTED = frozenset(Treatment) - {Treatment.NOT_EXPOSED}


def test_every_routed_treatment_is_recorded_in_the_route_table() -> None:
    """Each served SDK operation has its route; each Mistral route is one of them."""
    assert unrecorded_routes(ROUTED) == []


def test_the_route_check_sees_a_missing_route_and_a_stray_one() -> None:
    """The check reports SDK operations without a route and routes of another treatment."""
    without_chat = tuple(r for r in routes.ROUTES if r.operation != "chat.complete")
    problems = unrecorded_routes(frozenset({Treatment.STORED, Treatment.METERED}), without_chat)
    assert "chat.complete: no route for POST /v1/chat/completions" in problems
    assert "route models.list: models.list is shared_read" in problems


def test_no_mistral_route_serves_a_not_exposed_operation() -> None:
    """A route whose method and path is a not-exposed SDK operation would contradict the doc."""
    served = frozenset(Treatment) - {Treatment.NOT_EXPOSED}
    assert [p for p in unrecorded_routes(served) if p.startswith("route ")] == []


_README_TREATMENTS = {
    "stored": Treatment.STORED,
    "metered pass-through": Treatment.METERED,
    "tenant-owned": Treatment.OWNED,
    "shared read-only": Treatment.SHARED_READ,
    "not exposed": Treatment.NOT_EXPOSED,
}


def _readme_namespaces() -> list[tuple[list[str], list[str], Treatment]]:
    """The README's namespace table: (namespaces, the calls named in brackets, treatment)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text.split("### The SDK's namespaces", 1)[1].split("\n\n")[2]
    rows = []
    for line in table.splitlines()[2:]:
        first, treatment = line.split("|")[1:3]
        names, _, calls = first.partition("(")
        rows.append(
            (
                re.findall(r"`([^`]+)`", names),
                re.findall(r"`([^`]+)`", calls),
                _README_TREATMENTS[treatment.strip()],
            )
        )
    return rows


def test_the_readme_table_gives_every_namespace_its_treatment() -> None:
    """Each SDK operation falls under a row of README's namespace table, of its treatment."""
    rows = _readme_namespaces()
    wrong = {}
    for op in operations():
        found = {
            treatment
            for names, calls, treatment in rows
            for name in names
            if op.name.startswith(name + ".")
            and (not calls or op.name[len(name) + 1 :].split(".")[0] in calls)
        }
        if found != {op.treatment}:
            wrong[op.name] = sorted(found)
    assert wrong == {}

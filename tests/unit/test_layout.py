"""The tree shows the design: only the HTTP edge knows the web framework; no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEB_FRAMEWORK = ("flask", "werkzeug")
EDGE = SHARED / "http"


def _modules() -> dict[str, Path]:
    """Every module under shared/, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(SHARED.rglob("*.py")):
        parts = list(path.relative_to(SHARED.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path) -> set[str]:
    """The names `path` imports, anywhere in it (inside functions and TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    """Module -> the shared modules it imports (`from pkg import mod` names the module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported in _imported(name, path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in `graph`, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_only_the_http_edge_imports_the_web_framework() -> None:
    """No module under shared/ outside shared/http imports flask or werkzeug, even lazily."""
    offenders = sorted(
        f"{name} imports {imported}"
        for name, path in _modules().items()
        if EDGE not in path.parents
        for imported in _imported(name, path)
        if imported.split(".")[0] in WEB_FRAMEWORK
    )
    assert offenders == []


def test_the_edge_check_sees_an_import_of_flask() -> None:
    """The check above would fail: the edge's own web module is seen importing flask."""
    assert "flask" in _imported("shared.http.web", EDGE / "web.py")


def test_shared_has_no_import_circle() -> None:
    """The import graph of shared/ (every import statement, lazy ones too) has no cycle."""
    assert _cycle(_graph()) is None


def test_the_cycle_check_finds_a_circle() -> None:
    """The cycle finder reports a circle when there is one, and only then."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_every_package_says_what_it_holds() -> None:
    """Each package under shared/ opens with a docstring."""
    bare = [
        str(init.relative_to(SHARED.parent))
        for init in SHARED.rglob("__init__.py")
        if not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert bare == []

"""Each function's deploy bundle imports its entry point from the bundle alone.

functions-framework puts only the function's folder on `sys.path`, so a bundle
that lacks `shared/` deploys fine and fails on its first request. These tests
build the exact zip Terraform uploads, unzip it, and import `main` in a fresh
interpreter that cannot see this checkout: `-I` drops the working directory,
PYTHONPATH and the user site, and the probe removes what the project's
editable install (`pip install -e .`) adds, so `shared` can only come from the
bundle. A control proves it: the same bundle without `shared/` fails to import.
Third-party packages come from the test interpreter's site-packages, and the
modules the entry point imports must belong to distributions that the
bundle's requirements.txt installs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.bundle import ROOT, build_bundle, bundle_entries
from shared.http.routes import FUNCTIONS

pytestmark = pytest.mark.slow

# Runs in the isolated interpreter. argv: bundle directory, checkout directory.
_PROBE = r"""
import json, os, sys
from importlib import metadata

bundle, checkout = sys.argv[1], sys.argv[2]
# What an editable install of the project adds: a meta path finder and a path
# hook (setuptools), or a plain path entry pointing at the checkout. The
# interpreter's own environment (which may live inside the checkout) stays.


def in_checkout(path):
    inside = path == checkout or path.startswith(checkout + "/")
    return inside and not path.startswith(sys.prefix + "/")


sys.meta_path[:] = [
    f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
]
sys.path[:] = [p for p in sys.path if not (in_checkout(p) or "__editable__" in p)]
sys.path.insert(0, bundle)
before = set(sys.modules)

import main

report = {"handle": callable(getattr(main, "handle", None)), "files": {}, "distributions": []}
third_party = {}
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if name in before or not path:
        continue
    if name == "main" or name == "shared" or name.startswith("shared."):
        report["files"][name] = path
    elif name.split(".")[0] not in sys.stdlib_module_names:
        third_party[os.path.normpath(path)] = name
for dist in metadata.distributions():
    for file in dist.files or ():
        if os.path.normpath(str(dist.locate_file(file))) in third_party:
            report["distributions"].append(dist.metadata["Name"])
report["distributions"] = sorted(set(report["distributions"]))
print(json.dumps(report))
"""


def probe(bundle_dir: Path) -> subprocess.CompletedProcess[str]:
    """Import `main` from an unzipped bundle in an interpreter that cannot see the checkout."""
    return subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, str(bundle_dir), str(ROOT)],
        cwd=bundle_dir,
        env={"PATH": "/usr/bin:/bin", "HOME": str(bundle_dir)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def probe_report(bundle_dir: Path) -> dict[str, Any]:
    result = probe(bundle_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def unzip(archive: Path, target: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(target)
    return target


def requirement_closure(lines: Iterable[str]) -> set[str]:
    """Every distribution `pip install -r` of these lines brings, as installed here."""
    todo = [Requirement(line) for line in lines]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            dependency = Requirement(spec)
            extras = [""] + sorted(requirement.extras)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras):
                todo.append(dependency)
    return seen


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A throwaway checkout: this project's shared/ and requirements, one tiny function."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "shared", root / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "requirements.txt", root / "requirements.txt")
    function = root / "functions" / "fake"
    function.mkdir(parents=True)
    (function / "main.py").write_text(
        "import functions_framework\n"
        "from shared.http import routes\n\n\n"
        "@functions_framework.http\n"
        "def handle(request):\n"
        "    return {'routes': len(routes.ROUTES)}\n"
    )
    (function / "__pycache__").mkdir()
    (function / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"stale")
    return root


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundle_has_main_shared_and_requirements_at_its_root(function, tmp_path):
    """main.py, the shared package (migrations included) and requirements.txt, no caches."""
    archive = build_bundle(function, tmp_path)
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        requirements = zipped.read("requirements.txt")
    assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/http/routes.py"} <= set(
        names
    )
    assert any(n.startswith("shared/db/migrations/") and n.endswith(".sql") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("functions/", "tests/", "deploy/"))]
    assert requirements == (ROOT / "requirements.txt").read_bytes()


def test_bundle_is_reproducible(fake_root, tmp_path):
    """Two builds of the same sources are byte-identical, entries sorted, timestamps fixed."""
    first = build_bundle("fake", tmp_path / "one", root=fake_root)
    (fake_root / "shared" / "http" / "routes.py").touch()
    second = build_bundle("fake", tmp_path / "two", root=fake_root)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zipped:
        infos = zipped.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_bundle_changes_when_a_source_changes(fake_root, tmp_path):
    """Editing shared/ changes the zip, so Terraform's hash-named object redeploys."""
    before = build_bundle("fake", tmp_path / "one", root=fake_root).read_bytes()
    with (fake_root / "shared" / "http" / "routes.py").open("a") as handle:
        handle.write("\n# changed\n")
    assert build_bundle("fake", tmp_path / "two", root=fake_root).read_bytes() != before


def test_bundle_entries_leave_out_caches(fake_root):
    """__pycache__ folders and .pyc files never reach a bundle."""
    names = bundle_entries("fake", fake_root)
    assert "main.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_fake_function_imports_from_its_bundle(fake_root, tmp_path):
    """A minimal function's bundle imports `shared` from inside the bundle, not the checkout."""
    bundle = unzip(build_bundle("fake", tmp_path / "dist", root=fake_root), tmp_path / "fake")
    report = probe_report(bundle)
    assert report["handle"] is True
    assert report["files"]["shared"].startswith(str(bundle))
    assert report["files"]["main"] == str(bundle / "main.py")


def test_bundle_without_shared_does_not_import(fake_root, tmp_path):
    """Control: without shared/ in the bundle, `import main` fails despite the editable install."""
    bundle = unzip(build_bundle("fake", tmp_path / "dist", root=fake_root), tmp_path / "fake")
    shutil.rmtree(bundle / "shared")
    result = probe(bundle)
    assert result.returncode != 0
    assert "No module named 'shared'" in result.stderr


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each real function's unzipped bundle and its probe report, built once per module."""
    base = tmp_path_factory.mktemp("bundles")
    found = {}
    for function in FUNCTIONS:
        bundle = unzip(build_bundle(function, base / "dist"), base / function)
        found[function] = (bundle, probe_report(bundle))
    return found


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_imports_its_entry_point_from_the_bundle_alone(function, probed):
    """`main.handle` is callable and every `shared` module it loads comes from the bundle."""
    bundle, report = probed[function]
    assert report["handle"] is True
    assert report["files"]["main"] == str(bundle / "main.py")
    outside = {n: p for n, p in report["files"].items() if not p.startswith(str(bundle) + "/")}
    assert not outside, f"loaded from outside the bundle: {outside}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_imports_only_what_requirements_install(function, probed):
    """Every third-party module the entry point imports belongs to a pinned requirement's tree."""
    bundle, report = probed[function]
    allowed = requirement_closure(requirement_lines(bundle / "requirements.txt"))
    used = {canonicalize_name(d) for d in report["distributions"]}
    assert used, "the probe saw no third-party import: it is not looking"
    assert used <= allowed, f"imported but not in requirements.txt: {sorted(used - allowed)}"


def test_every_function_folder_is_bundled():
    """Each function of the route table has a folder with a main.py to bundle."""
    written = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
    assert written == sorted(FUNCTIONS)

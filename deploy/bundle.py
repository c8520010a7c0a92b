"""Build each function's deploy bundle: one reproducible zip per function.

    python -m deploy.bundle [--out dist] [FUNCTION ...]

A bundle holds, at its root, the function's own files (so `main.py` is at the
root, where the Python runtime looks for the entry point), the `shared/`
package (functions-framework puts only the function's folder on `sys.path`,
so the library must travel inside it) and the pinned `requirements.txt` that
Cloud Build installs. The same sources always give the same bytes: entries
are sorted, timestamps and permissions fixed, caches left out. Terraform names
the uploaded object after the zip's hash, so only a real change redeploys.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.http.routes import FUNCTIONS

__all__ = ["ROOT", "bundle_entries", "build_bundle", "main"]

ROOT = Path(__file__).resolve().parents[1]
# The earliest timestamp a zip can hold: a fixed one keeps builds byte-identical.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES):
            yield path


def bundle_entries(function: str, root: Path = ROOT) -> dict[str, Path]:
    """Archive name -> source file for one function's bundle."""
    function_dir = root / "functions" / function
    if not (function_dir / "main.py").is_file():
        raise FileNotFoundError(f"{function_dir / 'main.py'} does not exist")
    entries: dict[str, Path] = {}
    for path in _files(function_dir):
        entries[path.relative_to(function_dir).as_posix()] = path
    for path in _files(root / "shared"):
        entries[path.relative_to(root).as_posix()] = path
    requirements = root / "requirements.txt"
    if "requirements.txt" in entries:
        raise ValueError(f"{function_dir} has its own requirements.txt; the bundle uses the root's")
    entries["requirements.txt"] = requirements
    return dict(sorted(entries.items()))


def build_bundle(function: str, out_dir: Path, root: Path = ROOT) -> Path:
    """Write `<out_dir>/<function>.zip` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{function}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in bundle_entries(function, root).items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, source.read_bytes(), compresslevel=9)
    partial.replace(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument("functions", nargs="*", metavar="FUNCTION", help="default: all")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.functions) - set(FUNCTIONS))
    if unknown:
        parser.error(
            f"unknown function(s) {', '.join(unknown)}; choose from {', '.join(FUNCTIONS)}"
        )
    for function in args.functions or FUNCTIONS:
        path = build_bundle(function, args.out)
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

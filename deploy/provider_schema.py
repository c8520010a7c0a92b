"""Extract the google provider's arguments, for the offline Terraform tests.

    pip download --no-deps cdktn-provider-google==19.0.0 -d /tmp/schema
    python -m deploy.provider_schema /tmp/schema/cdktn_provider_google-19.0.0-py3-none-any.whl

Terraform's providers cannot be downloaded where the tests run, so `terraform
validate` cannot check that each resource's arguments exist. The CDK Terrain
package `cdktn-provider-google` ships bindings generated from the provider's
own schema, as a jsii assembly (JSON) inside the wheel; version 19.0.0 was
generated from hashicorp/google 7.31.0, the version the environment roots pin.
This reads that assembly (no Node.js, nothing imported from the package) and
writes, for every resource and data source type the configuration uses, its
arguments and nested blocks, and which are required, to
tests/data/google_provider_schema.json. tests/unit/test_terraform.py checks
every block of terraform/ against it. Run it again after adding a resource
type or changing the pinned provider version.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["extract", "main", "used_types"]

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "data" / "google_provider_schema.json"

_VERSION = re.compile(r"hashicorp/google/(\d+\.\d+\.\d+)/docs")
_ANCHOR = re.compile(r"/docs/(?:resources|data-sources)/[a-z0-9_]+#([a-z0-9_]+)[ }]")
_REPRESENTS = re.compile(r"/docs/(resources|data-sources)/([a-z0-9_]+) (google_[a-z0-9_]+)\}")
_META = {"count", "dependsOn", "forEach", "lifecycle", "provider", "provisioners", "connection"}


def used_types(terraform: Path) -> dict[str, set[str]]:
    """Resource and data source types named anywhere under `terraform`."""
    found: dict[str, set[str]] = {"resource": set(), "data": set()}
    for path in terraform.rglob("*.tf"):
        text = path.read_text()
        found["resource"] |= set(re.findall(r'^resource "(google_\w+)"', text, re.M))
        found["data"] |= set(re.findall(r'^data "(google_\w+)"', text, re.M))
    return found


def _assembly(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        packed = archive.read(name)
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        member = tar.extractfile("package/.jsii")
        assert member is not None
        data: dict[str, Any] = json.load(member)
    return data


def _struct_fqn(type_ref: dict[str, Any]) -> str | None:
    """The struct a property holds (a block), through unions and arrays; None for values."""
    if "fqn" in type_ref:
        return str(type_ref["fqn"])
    if "union" in type_ref:
        for option in type_ref["union"]["types"]:
            found = _struct_fqn(option)
            if found and not found.startswith("cdktn."):
                return found
        return None
    if "collection" in type_ref and type_ref["collection"]["kind"] == "array":
        return _struct_fqn(type_ref["collection"]["elementtype"])
    return None


def _schema(types: dict[str, Any], fqn: str, depth: int = 0) -> dict[str, Any]:
    """{"args": {name: nested schema | None}, "required": [names]} of one struct."""
    struct = types[fqn]
    args: dict[str, Any] = {}
    required = []
    for prop in struct.get("properties", []):
        if prop["name"] in _META:
            continue
        # The registry link ends in #<argument>; it sits in the summary, the remarks,
        # or a custom doc tag, depending on the argument's description.
        docs = prop.get("docs", {})
        texts = [docs.get("summary", ""), docs.get("remarks", ""), *docs.get("custom", {}).values()]
        anchor = _ANCHOR.search(" ".join(t + " " for t in texts))
        if anchor is None:
            continue
        name = anchor.group(1)
        nested = _struct_fqn(prop["type"])
        if nested is not None and nested in types and types[nested]["kind"] == "interface":
            args[name] = _schema(types, nested, depth + 1) if depth < 8 else {"args": {}}
        else:
            args[name] = None
        if not prop.get("optional", False):
            required.append(name)
    return {"args": args, "required": sorted(required)}


def extract(wheel: Path, wanted: dict[str, set[str]]) -> dict[str, Any]:
    assembly = _assembly(wheel)
    types = assembly["types"]
    versions = {v for t in types.values() for v in _VERSION.findall(json.dumps(t.get("docs", {})))}
    (version,) = versions
    out: dict[str, Any] = {
        "provider": "hashicorp/google",
        "provider_version": version,
        "source": f"{assembly['name']}@{assembly['version']}",
        "resource": {},
        "data": {},
    }
    for declared in types.values():
        if declared["kind"] != "class" or "initializer" not in declared:
            continue
        found = _REPRESENTS.search(declared.get("docs", {}).get("summary", ""))
        if found is None:
            continue
        kind = "resource" if found.group(1) == "resources" else "data"
        name = found.group(3)
        if name not in wanted[kind]:
            continue
        (config,) = [p for p in declared["initializer"]["parameters"] if p["name"] == "config"]
        out[kind][name] = _schema(types, config["type"]["fqn"])
    for kind in ("resource", "data"):
        missing = wanted[kind] - set(out[kind])
        if missing:
            raise SystemExit(f"not in the provider {version}: {kind} {sorted(missing)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="a downloaded cdktn-provider-google wheel")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    schema = extract(args.wheel, used_types(ROOT / "terraform"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    counts = {k: len(schema[k]) for k in ("resource", "data")}
    print(f"{args.out}: google {schema['provider_version']} ({schema['source']}), {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

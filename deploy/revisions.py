"""Record the revisions serving before a deploy; send traffic back to them if it fails.

    python -m deploy.revisions record --tf-outputs tf-outputs.json \
        --project P --region R --out revisions.json
    python -m deploy.revisions rollback --project P --region R --from revisions.json

Cloud Build runs `record` after the plan (the outputs then still describe the
deployed stack) and `rollback` when the smoke test fails after `terraform
apply`: each function's Cloud Run service gets 100% of its traffic on the
revision that served before, so a bad revision does not stay in front of
callers. A function that did not exist before (the first deploy) has nothing
to go back to and is left alone. The next successful deploy makes a new
revision, and Cloud Functions sends all traffic to it again.

Talks to the Cloud Run Admin API v2 with the build's own credentials (the
deployer holds roles/run.admin).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["Call", "main", "record", "rollback"]

_API = "https://run.googleapis.com/v2"

# (method, url, json body or None) -> the answer's JSON, or None for 404.
Call = Callable[[str, str, dict[str, Any] | None], dict[str, Any] | None]


def _service_url(project: str, region: str, service: str) -> str:
    return (
        f"{_API}/projects/{quote(project, safe='')}/locations/{quote(region, safe='')}"
        f"/services/{quote(service, safe='')}"
    )


def record(call: Call, project: str, region: str, services: Mapping[str, str]) -> dict[str, str]:
    """Function -> the short name of the revision serving it now (absent if none)."""
    serving: dict[str, str] = {}
    for function, service in sorted(services.items()):
        found = call("GET", _service_url(project, region, service), None)
        revision = (found or {}).get("latestReadyRevision", "")
        if revision:
            serving[function] = revision.rsplit("/", 1)[-1]
    return serving


def rollback(
    call: Call,
    project: str,
    region: str,
    services: Mapping[str, str],
    previous: Mapping[str, str],
) -> list[str]:
    """Send each service's traffic to its previous revision; return what was moved."""
    moved = []
    for function, revision in sorted(previous.items()):
        service = services[function]
        body = {
            "traffic": [
                {
                    "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                    "revision": revision,
                    "percent": 100,
                }
            ]
        }
        call("PATCH", _service_url(project, region, service) + "?updateMask=traffic", body)
        moved.append(f"{service} -> {revision}")
    return moved


def _google_call() -> Call:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    session = AuthorizedSession(credentials)

    def call(method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
        response = session.request(method, url, json=body, timeout=60)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    return call


def _services(tf_outputs: Path) -> dict[str, str]:
    outputs = json.loads(tf_outputs.read_text())
    entry = outputs.get("function_names")
    return dict(entry["value"]) if entry else {}


def main(argv: Sequence[str] | None = None, call: Call | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("record", "rollback"):
        command = sub.add_parser(name)
        command.add_argument("--project", required=True)
        command.add_argument("--region", required=True)
        command.add_argument("--tf-outputs", type=Path, default=Path("tf-outputs.json"))
    sub.choices["record"].add_argument("--out", type=Path, default=Path("revisions.json"))
    sub.choices["rollback"].add_argument(
        "--from", dest="source", type=Path, default=Path("revisions.json")
    )
    args = parser.parse_args(argv)
    services = _services(args.tf_outputs)
    call = call or _google_call()
    if args.command == "record":
        serving = record(call, args.project, args.region, services)
        args.out.write_text(json.dumps(serving, indent=2, sort_keys=True) + "\n")
        print(f"serving before the deploy: {serving or 'nothing (first deploy)'}")
        return 0
    previous = json.loads(args.source.read_text()) if args.source.is_file() else {}
    moved = rollback(call, args.project, args.region, services, previous)
    print("rolled back: " + (", ".join(moved) if moved else "nothing to roll back to"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

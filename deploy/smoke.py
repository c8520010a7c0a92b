"""Smoke test through the load balancer, run by Cloud Build after `terraform apply`.

    python -m deploy.smoke --url https://gateway.example.com
    python -m deploy.smoke --tf-outputs tf-outputs.json      (reads `gateway_url`)

Checks, each retried while a fresh deploy settles (URL map changes and a new
managed certificate take minutes to reach every Google front end):

- `GET /gateway/v1/health/<function>` answers 200 for every function behind
  the load balancer (the health route checks PostgreSQL and Redis for real);
- `GET /v1/conversations` without a key answers 401 in the gateway's JSON
  error shape, so the gateway (not the load balancer) is answering;
- with `SMOKE_API_KEY` set (a read-only gateway key, from Secret Manager),
  `GET /v1/conversations` answers 200: auth, database and rate limiter work.
  The secret starts as the placeholder `none` (before any key exists), which
  skips this check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.routes import PUBLIC_FUNCTIONS
from shared.http.routes import health_path

__all__ = ["Check", "Result", "checks_for", "main", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    path: str
    expect: int
    api_key: str | None = None


@dataclass(frozen=True)
class Result:
    status: int
    body: bytes
    content_type: str


Fetch = Callable[[str, dict[str, str]], Result]


def checks_for(api_key: str | None) -> list[Check]:
    checks = [Check(f"health {f}", health_path(f), 200) for f in PUBLIC_FUNCTIONS]
    checks.append(Check("no key is refused", "/v1/conversations", 401))
    if api_key:
        checks.append(Check("a key is accepted", "/v1/conversations", 200, api_key))
    return checks


def _fetch(url: str, headers: dict[str, str]) -> Result:
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - https only, checked in main
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
            return Result(response.status, response.read(), response.headers.get_content_type())
    except urllib.error.HTTPError as exc:
        return Result(exc.code, exc.read(), exc.headers.get_content_type())


def _verdict(check: Check, result: Result) -> str | None:
    """None when the answer is right, else what was wrong."""
    if result.status != check.expect:
        return f"status {result.status}, expected {check.expect}"
    if result.content_type != "application/json":
        return f"content type {result.content_type}, expected application/json"
    try:
        json.loads(result.body)
    except ValueError:
        return "body is not JSON"
    return None


def run_checks(
    base_url: str,
    checks: Sequence[Check],
    *,
    attempts: int = 20,
    delay_s: float = 15.0,
    fetch: Fetch = _fetch,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Run every check, retrying each; return the failures (empty when all passed)."""
    failures = []
    for check in checks:
        headers = {"Accept": "application/json", "User-Agent": "gateway-smoke-test"}
        if check.api_key:
            headers["Authorization"] = f"Bearer {check.api_key}"
        problem: str | None = "not run"
        for attempt in range(1, attempts + 1):
            try:
                problem = _verdict(check, fetch(base_url + check.path, headers))
            except (OSError, urllib.error.URLError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                break
            print(f"  {check.name}: attempt {attempt}/{attempts}: {problem}", file=sys.stderr)
            if attempt < attempts:
                sleep(delay_s)
        status = "ok" if problem is None else f"FAILED ({problem})"
        print(f"{check.name}: GET {check.path} -> {status}")
        if problem is not None:
            failures.append(f"{check.name}: {problem}")
    return failures


def _url_from_outputs(path: Path) -> str:
    outputs = json.loads(path.read_text())
    return str(outputs["gateway_url"]["value"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="the gateway's base URL, https://<domain>")
    source.add_argument("--tf-outputs", type=Path, help="`terraform output -json` file")
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--delay", type=float, default=15.0, help="seconds between attempts")
    args = parser.parse_args(argv)
    base_url = (args.url or _url_from_outputs(args.tf_outputs)).rstrip("/")
    if not base_url.startswith("https://"):
        parser.error(f"expected an https:// URL, got {base_url!r}")
    api_key = os.environ.get("SMOKE_API_KEY", "").strip()
    if api_key.lower() in ("", "none"):
        print("SMOKE_API_KEY is not set: the authenticated check is skipped")
        api_key = None
    failures = run_checks(base_url, checks_for(api_key), attempts=args.attempts, delay_s=args.delay)
    if failures:
        print(f"smoke test failed: {'; '.join(failures)}", file=sys.stderr)
        return 1
    print(f"smoke test passed against {base_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tenancy's command line: the first key of a deployment, or a break-glass one.

    python -m shared.tenancy create-operator --owner <tenant> [--name <name>]
    python -m shared.tenancy create-admin --owner <tenant> [--name <name>]

prints a new operator (or admin) key once, alone on stdout (its audit line goes
to stderr). Both need database access, not a key; the tenant is created if it
does not exist yet. Run beside `make run` with no database settings, they use
the local stack's database, as `.local/stack.json` names it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from shared.container import get_container
from shared.tenancy import audit
from shared.tenancy.keys import create_key

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.tenancy")
    sub = parser.add_subparsers(dest="command", required=True)
    for role in ("operator", "admin"):
        create = sub.add_parser(f"create-{role}", help=f"create an {role} key and print it once")
        create.add_argument("--owner", required=True, help="the tenant the key belongs to")
        create.add_argument("--name", default=f"bootstrap {role}")
    args = parser.parse_args(argv)
    role = args.command.removeprefix("create-")
    _use_local_stack(os.environ)

    with get_container().pool.transaction() as conn:
        key = create_key(conn, owner_id=args.owner, name=args.name, role=role)
        audit.record(
            conn,
            "key.create",
            key.principal.key_id,
            tenant_id=args.owner,
            changes={"name": args.name, "role": role, "via": "command line"},
        )
    # stdout holds the key alone (deploy/admin-key.yaml stores it as is); the audit line
    # goes to stderr.
    audit.flush(lambda line: print(json.dumps(line, default=str), file=sys.stderr))
    print(key.secret)
    return 0


_DATABASE_SETTINGS = ("DATABASE_URL", "CLOUD_SQL_INSTANCE", "DB_HOST")


def _use_local_stack(environ: Any) -> None:
    """With no database settings, use the running `make run` stack's (its stack.json)."""
    if any(environ.get(name) for name in _DATABASE_SETTINGS):
        return
    state = Path(environ.get("GATEWAY_STATE_DIR") or Path.cwd() / ".local")
    try:
        stack = json.loads((state / "stack.json").read_text())
    except (OSError, ValueError):
        return
    environ["DATABASE_URL"] = stack["database_url"]
    if not environ.get("REDIS_URL") and not environ.get("REDIS_HOST"):
        environ["REDIS_URL"] = stack["redis_url"]
    print(f"using the local stack's database ({state / 'stack.json'})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""Terraform outputs as shell lines for Cloud Build steps.

    terraform output -json > tf-outputs.json
    eval "$(python -m deploy.tfoutputs tf-outputs.json migrate-env)"
    python -m deploy.tfoutputs tf-outputs.json get gateway_url

`migrate-env` prints the connection settings the functions themselves use
(`CLOUD_SQL_INSTANCE`, `DB_IAM_AUTH=true`, `DB_NAME`) with `DB_USER` set to the
deployer's IAM database user, plus `DB_APP_USERS` for `deploy.grants`. Values
are shell-quoted; a missing output fails loudly (on a project where the first
`terraform apply` has not run yet, see docs/deploy.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "migrate_env", "read_outputs"]


def read_outputs(path: Path) -> dict[str, Any]:
    raw = json.loads(path.read_text())
    return {name: entry["value"] for name, entry in raw.items()}


def _required(outputs: Mapping[str, Any], name: str) -> Any:
    if name not in outputs:
        raise KeyError(
            f"Terraform output {name!r} is missing: has the first apply run? (docs/deploy.md)"
        )
    return outputs[name]


def migrate_env(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The environment of `python -m shared.db.migrate` and `python -m deploy.grants`."""
    return {
        "CLOUD_SQL_INSTANCE": str(_required(outputs, "sql_connection_name")),
        "DB_IAM_AUTH": "true",
        "DB_NAME": str(_required(outputs, "db_name")),
        "DB_USER": str(_required(outputs, "deployer_db_user")),
        "DB_APP_USERS": ",".join(_required(outputs, "function_db_users").values()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path, help="`terraform output -json` file")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate-env", help="export lines for the migration step")
    get = sub.add_parser("get", help="print one output's value")
    get.add_argument("name")
    args = parser.parse_args(argv)
    outputs = read_outputs(args.outputs)
    try:
        if args.command == "get":
            print(_required(outputs, args.name))
        else:
            for key, value in migrate_env(outputs).items():
                print(f"export {key}={shlex.quote(value)}")
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Give each function's database user the table privileges it needs.

    DB_APP_USERS="gw-dev-start@p.iam,gw-dev-history@p.iam" python -m deploy.grants
    DB_MIGRATOR="gw-dev-deployer@p.iam" python -m deploy.grants --bootstrap

Cloud SQL creates IAM database users with no privileges at all
(https://cloud.google.com/sql/docs/postgres/iam-logins), and the migrations
run as the deployer's IAM user, which therefore owns every table. After
migrating, Cloud Build runs this with the same connection settings to grant
the functions' users data access (never DDL) on what exists now and, through
default privileges, on what later migrations create. Every statement is
idempotent, so it runs on every deploy.

`--bootstrap` runs once per database, as the built-in `postgres` user
(DB_USER=postgres, DB_PASSWORD, DB_IAM_AUTH=false): it lets the deployer's IAM
user create tables in the `public` schema, which PostgreSQL 15 and later
grant to no one by default (deploy/bootstrap-db.yaml, docs/deploy.md).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence

__all__ = ["bootstrap_statements", "grant_statements", "main", "parse_users"]

# IAM database users are emails without `.gserviceaccount.com`: nothing else is allowed.
_USER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,62}$")


def _quote(user: str) -> str:
    if not _USER.match(user):
        raise ValueError(f"not an IAM database user name: {user!r}")
    return '"' + user + '"'


def parse_users(raw: str) -> list[str]:
    users = [u.strip() for u in raw.split(",") if u.strip()]
    for user in users:
        _quote(user)
    return users


def grant_statements(users: Iterable[str], schema: str = "public") -> list[str]:
    """The GRANT statements for each user, in the order they must run."""
    statements = []
    for user in users:
        role = _quote(user)
        statements += [
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
            f" GRANT USAGE, SELECT ON SEQUENCES TO {role}",
            # The audit log is append-only for the functions (migration 0003's trigger
            # refuses it too; without the privilege they cannot disable that either).
            f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.audit_log FROM {role}",
        ]
    return statements


def bootstrap_statements(migrator: str, schema: str = "public") -> list[str]:
    """What the built-in admin runs once so the migrating user can create tables."""
    return [f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {_quote(migrator)}"]


def _run(statements: list[str]) -> None:
    from shared.container import Container

    container = Container()
    try:
        with container.pool.transaction() as conn:
            for statement in statements:
                conn.run(statement)
    finally:
        container.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", action="store_true", help="once, as the postgres user")
    args = parser.parse_args(argv)
    variable = "DB_MIGRATOR" if args.bootstrap else "DB_APP_USERS"
    users = parse_users(os.environ.get(variable, ""))
    if not users:
        print(f"{variable} is empty: nothing to grant", file=sys.stderr)
        return 2
    if args.bootstrap:
        _run([s for user in users for s in bootstrap_statements(user)])
        print(f"{', '.join(users)} may now create tables")
    else:
        _run(grant_statements(users))
        print(f"granted data access to {len(users)} user(s): {', '.join(users)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""python -m gatewayctl: tenants, keys, models, usage, audit, conversations export, batches.

    python -m gatewayctl whoami
    python -m gatewayctl models [--json]       (the names a key's --allow-model may give)
    python -m gatewayctl tenants list | get ID | create ID --name N | update ID [--disable]
    python -m gatewayctl keys list [--owner T] | create --name N --role R | update KEY_ID
                          | rotate KEY_ID [--grace S] | revoke KEY_ID
    python -m gatewayctl usage [--from D] [--to D] [--group-by day,model] [--json]
    python -m gatewayctl audit [--action A] [--tenant T] [--since T] [--json]
    python -m gatewayctl conversations export [--agent-id A] [--out FILE]   (JSON lines)
    python -m gatewayctl batch submit FILE [--no-follow] [--topic TOPIC]
    python -m gatewayctl batch status BATCH_ID

URL and key: --url/--key, else GATEWAY_URL/GATEWAY_KEY, else `.local/stack.json` (the
stack `make run` started, its bootstrap admin key). Exit status: 0 done, 1 the gateway
refused (its message printed), 2 a usage problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gatewayctl import _commands
from gatewayctl._client import ApiError
from gatewayctl._config import UsageError

LIMITS = (
    "rate_limit_requests",
    "rate_limit_window",
    "token_budget_per_minute",
    "token_budget_per_day",
)


def _limits(parser: argparse.ArgumentParser) -> None:
    for name in LIMITS:
        parser.add_argument("--" + name.replace("_", "-"), type=int, dest=name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gatewayctl", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", help="the gateway's URL (else GATEWAY_URL, .local/stack.json)")
    parser.add_argument("--key", help="a gateway key (else GATEWAY_KEY, .local/stack.json)")
    parser.add_argument("--stack", help="a stack.json to read (default .local/stack.json)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("whoami", help="the key's tenant, role and limits")
    models = sub.add_parser("models", help="Mistral's models, as this key may see them")
    models.add_argument("--json", action="store_true")

    tenants = sub.add_parser("tenants", help="tenants (operator)").add_subparsers(
        dest="action", required=True
    )
    listing = tenants.add_parser("list")
    listing.add_argument("--json", action="store_true")
    tenants.add_parser("get").add_argument("tenant_id")
    create = tenants.add_parser("create")
    create.add_argument("tenant_id")
    create.add_argument("--name", required=True)
    _limits(create)
    update = tenants.add_parser("update")
    update.add_argument("tenant_id")
    update.add_argument("--name")
    state = update.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true")
    state.add_argument("--enable", action="store_true")
    _limits(update)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    listing = keys.add_parser("list")
    listing.add_argument("--owner", help="another tenant's keys (operator)")
    listing.add_argument("--json", action="store_true")
    create = keys.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=("operator", "admin", "user", "read_only"))
    create.add_argument("--owner", help="the tenant (operator; default: the caller's)")
    for kind in ("model", "agent"):
        create.add_argument(f"--allow-{kind}", action="append", dest=f"allowed_{kind}s")
    _limits(create)
    update = keys.add_parser("update")
    update.add_argument("key_id")
    update.add_argument("--name")
    for kind in ("model", "agent"):
        update.add_argument(f"--allow-{kind}", action="append", dest=f"allowed_{kind}s")
    _limits(update)
    rotate = keys.add_parser("rotate")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=int, help="seconds the old secret keeps working")
    keys.add_parser("revoke").add_argument("key_id")

    usage = sub.add_parser("usage", help="requests and tokens")
    usage.add_argument("--from", dest="first", metavar="YYYY-MM-DD")
    usage.add_argument("--to", dest="last", metavar="YYYY-MM-DD")
    usage.add_argument(
        "--group-by", default="day", help="any of key,agent,model,operation,day,hour"
    )
    usage.add_argument("--owner", help="another tenant (operator)")
    usage.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--action")
    audit.add_argument("--tenant")
    audit.add_argument("--actor", help="the acting key's id")
    audit.add_argument("--since", help="RFC 3339 time")
    audit.add_argument("--until", help="RFC 3339 time")
    audit.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    audit.add_argument("--json", action="store_true")

    conversations = sub.add_parser("conversations", help="stored conversations").add_subparsers(
        dest="action", required=True
    )
    export = conversations.add_parser("export", help="JSON lines: each record with its entries")
    export.add_argument("--agent-id")
    export.add_argument("--model")
    export.add_argument("--status", choices=("active", "archived"))
    export.add_argument("--since", help="created at or after (RFC 3339)")
    export.add_argument("--until", help="created before (RFC 3339)")
    export.add_argument("--metadata", help="a JSON object the metadata must contain")
    export.add_argument("--no-entries", action="store_true", help="records only")
    export.add_argument("--out", help="a file (default: standard output)")

    batch = sub.add_parser("batch", help="batches").add_subparsers(dest="action", required=True)
    submit = batch.add_parser("submit", help="start a batch from a JSON message file")
    submit.add_argument("file")
    submit.add_argument("--topic", help="publish to this Pub/Sub topic (deployed)")
    submit.add_argument("--no-follow", action="store_true", help="do not wait for the end")
    submit.add_argument("--timeout", type=float, default=600, help="seconds to follow")
    batch.add_parser("status").add_argument("batch_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _commands.run(args, sys.stdout)
    except UsageError as exc:
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gatewayctl: the gateway could not be reached: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Each subcommand: one or a few HTTP calls, printed as a table or JSON."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from gatewayctl import _batch
from gatewayctl._client import Client, quote
from gatewayctl._config import UsageError, resolve

__all__ = ["run", "table"]

LIMITS = (
    "rate_limit_requests",
    "rate_limit_window",
    "token_budget_per_minute",
    "token_budget_per_day",
)
GW = "/gateway/v1"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    """Rows as aligned text columns, a header first."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list | dict):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip(), file=out)


def _dump(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2), file=out)


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return {n: getattr(args, n) for n in LIMITS if getattr(args, n, None) is not None}


def _id(value: str) -> str:
    return quote(value, safe="")


# -- commands ------------------------------------------------------------------------------------


def _whoami(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    _dump(client.call("GET", f"{GW}/whoami"), out)
    return 0


_MODEL_COLUMNS = ("id", "type", "owned_by", "max_context_length", "aliases")


def _models(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Mistral's models (filtered by the key's own allowed_models): the ids keys may allow."""
    listing = client.call("GET", "/v1/models")
    if args.json:
        _dump(listing, out)
    else:
        table(listing.get("data") or [], _MODEL_COLUMNS, out)
    return 0


_TENANT_COLUMNS = ("id", "name", "disabled", *LIMITS, "created_at")


def _tenants(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        rows = list(client.pages(f"{GW}/tenants", {"limit": 1000}))
        if args.json:
            _dump(rows, out)
        else:
            table(rows, _TENANT_COLUMNS, out)
        return 0
    if args.action == "get":
        _dump(client.call("GET", f"{GW}/tenants/{_id(args.tenant_id)}"), out)
        return 0
    if args.action == "create":
        body = {"id": args.tenant_id, "name": args.name, **_limits(args)}
        _dump(client.call("POST", f"{GW}/tenants", body), out)
        return 0
    body = _limits(args)
    if args.name:
        body["name"] = args.name
    if args.disable or args.enable:
        body["disabled"] = bool(args.disable)
    if not body:
        raise UsageError("nothing to change: give --name, --disable, --enable or a limit")
    _dump(client.call("PATCH", f"{GW}/tenants/{_id(args.tenant_id)}", body), out)
    return 0


_KEY_COLUMNS = ("id", "prefix", "name", "role", "owner_id", "created_at", "revoked_at")


def _key_fields(args: argparse.Namespace) -> dict[str, Any]:
    body = _limits(args)
    for name in ("allowed_models", "allowed_agents"):
        if getattr(args, name, None):
            body[name] = getattr(args, name)
    if getattr(args, "name", None):
        body["name"] = args.name
    return body


def _keys(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        rows = list(client.pages(f"{GW}/keys", {"limit": 1000, "owner_id": args.owner}))
        if args.json:
            _dump(rows, out)
        else:
            table(rows, _KEY_COLUMNS, out)
        return 0
    if args.action == "create":
        body = {**_key_fields(args), "role": args.role}
        if args.owner:
            body["owner_id"] = args.owner
        _dump(client.call("POST", f"{GW}/keys", body), out)
        return 0
    path = f"{GW}/keys/{_id(args.key_id)}"
    if args.action == "update":
        body = _key_fields(args)
        if not body:
            raise UsageError("nothing to change: give --name, a limit or an allow-list")
        _dump(client.call("PATCH", path, body), out)
    elif args.action == "rotate":
        grace = None if args.grace is None else {"grace_s": args.grace}
        _dump(client.call("POST", path + "/rotate", grace), out)
    else:
        _dump(client.call("POST", path + "/revoke"), out)
    return 0


def _usage(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    params = {
        "from": args.first,
        "to": args.last,
        "group_by": args.group_by,
        "owner_id": args.owner,
    }
    answer = client.call("GET", f"{GW}/usage", params=params)
    if args.json:
        _dump(answer, out)
        return 0
    counts = [
        "requests",
        "failed_requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "pages",
        "audio_seconds",
    ]
    fields = {"key": "key_id", "agent": "agent_id", "model": "model", "operation": "operation"}
    columns = [fields.get(g, g) for g in answer["group_by"]] + counts
    first = columns[0]
    total = {first: "total", **answer["totals"]}
    table([*answer["data"], total], columns, out)
    return 0


_AUDIT_COLUMNS = ("created_at", "tenant_id", "actor_prefix", "actor_role", "action", "target_id")


def _audit(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    params = {
        "limit": min(args.limit, 1000),
        "action": args.action,
        "tenant_id": args.tenant,
        "actor_key_id": args.actor,
        "since": args.since,
        "until": args.until,
    }
    rows = list(client.pages(f"{GW}/audit", params, limit=args.limit))
    if args.json:
        _dump(rows, out)
    else:
        table(rows, _AUDIT_COLUMNS, out)
    return 0


def _export(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    params = {
        "limit": 1000,
        "agent_id": args.agent_id,
        "model": args.model,
        "status": args.status,
        "created_after": args.since,
        "created_before": args.until,
        "metadata": args.metadata,
    }
    sink = open(args.out, "w", encoding="utf-8") if args.out else out  # noqa: SIM115
    try:
        for record in client.pages(f"{GW}/conversations", params):
            if not args.no_entries:
                path = f"{GW}/conversations/{_id(record['id'])}/entries"
                record["entries"] = list(client.pages(path, {"limit": 1000}))
            sink.write(json.dumps(record, separators=(",", ":")) + "\n")
    finally:
        if sink is not out:
            sink.close()
    return 0


def _batches(client: Client, args: argparse.Namespace, out: TextIO, target: Any) -> int:
    if args.action == "status":
        batch = client.call("GET", f"{GW}/batches/{_id(args.batch_id)}")
        _dump(batch, out)
        return 0
    owner = client.call("GET", f"{GW}/whoami")["owner_id"]
    message = _batch.load_message(args.file, owner)
    topic = args.topic or os.environ.get("GATEWAY_BATCH_TOPIC")
    delivery = None
    if topic:
        message_id = _batch.publish(topic, message)
        print(f"published batch {message['batch_id']} as message {message_id}", file=out)
    else:
        delivery = _batch.push_locally(target, message, out)
        print(f"posted batch {message['batch_id']} to the batch function", file=out)
    if args.no_follow:
        if delivery is not None:
            delivery.join()
        return 0
    batch = _batch.follow(client, message["batch_id"], out, args.timeout, delivery)
    items = f"{GW}/batches/{_id(message['batch_id'])}/items"
    ended = batch.get("status") in ("succeeded", "failed")
    failed = list(client.pages(items, {"limit": 1000, "status": "failed"})) if ended else []
    for item in failed:
        error = item.get("error") or {}
        print(f"  failed item {item['index']} ({item.get('custom_id')}): {error}", file=out)
    return 0 if batch.get("status") == "succeeded" else 1


_COMMANDS: dict[str, Callable[[Client, argparse.Namespace, TextIO], int]] = {
    "whoami": _whoami,
    "models": _models,
    "tenants": _tenants,
    "keys": _keys,
    "usage": _usage,
    "audit": _audit,
    "conversations": _export,
}


def run(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve(args.url, args.key, args.stack)
    client = Client(target.url, target.key)
    if args.command == "batch":
        return _batches(client, args, out, target)
    return _COMMANDS[args.command](client, args, out)

"""History reads on a big database: 100,000 conversations and 1,000,000 entries in one tenant.

Seeded with `INSERT ... SELECT generate_series` (about 15 s here), then
vacuumed and analysed so the planner sees production-like statistics. Conversation 0 has
10,000 entries; 99,000 others have 10 each. One client (wrk) reads pages of
100 from the stack's history function on its own port:

    entries        GET /gateway/v1/conversations/{id}/entries?limit=100   (first page,
                   and a page 5,000 entries in, through its cursor)
    conversations  GET /gateway/v1/conversations?limit=100                (first page,
                   and the page 50,000 conversations in, through its cursor)
    Mistral list   GET /v1/conversations?page_size=100                    (for information)
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from bench._proc import http, pg_connect
from bench._result import Row, fmt_ms
from bench._stack import BenchStack
from bench._stats import median
from bench._wrk import run_wrk

__all__ = ["history_rows"]

TENANT = "bench-history"
BIG = "bh_00000000"
CONVERSATIONS = 100_000
ENTRIES_PER = 10
WITH_ENTRIES = 99_000  # 99,000 x 10 + 10,000 = 1,000,000 entries
BIG_ENTRIES = 10_000

_SEED = [
    """
    INSERT INTO conversations (id, owner_id, model, status, metadata, created_at, updated_at)
    SELECT 'bh_' || lpad(g::text, 8, '0'), :tenant, 'mistral-small-latest', 'active',
           CASE WHEN g % 3 = 0 THEN jsonb_build_object('team', 't' || (g % 40)) END,
           timestamptz '2025-01-01' + g * interval '1 minute',
           timestamptz '2025-01-01' + g * interval '1 minute'
    FROM generate_series(0, :last_conversation) AS g
    """,
    """
    INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type, role, content,
                                      body, prompt_tokens, completion_tokens, created_at)
    SELECT 'bh_' || lpad(g::text, 8, '0'), s, 'msg_' || g || '_' || s, :tenant,
           CASE WHEN s % 2 = 0 THEN 'message.input' ELSE 'message.output' END,
           CASE WHEN s % 2 = 0 THEN 'user' ELSE 'assistant' END,
           'Stand-in reply: amber basil cedar delta ember fern glade harbor iris',
           jsonb_build_object(
               'object', 'entry', 'id', 'msg_' || g || '_' || s,
               'type', CASE WHEN s % 2 = 0 THEN 'message.input' ELSE 'message.output' END,
               'role', CASE WHEN s % 2 = 0 THEN 'user' ELSE 'assistant' END,
               'content', 'Stand-in reply: amber basil cedar delta ember fern glade harbor iris',
               'created_at', '2025-01-01T00:00:00Z'),
           CASE WHEN s % 2 = 0 THEN 12 ELSE 0 END, CASE WHEN s % 2 = 1 THEN 16 ELSE 0 END,
           timestamptz '2025-01-01' + g * interval '1 minute' + s * interval '1 second'
    FROM generate_series(1, :with_entries) AS g, generate_series(0, :last_seq) AS s
    """,
    """
    INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type, role, content,
                                      body, created_at)
    SELECT :big, s, 'msg_big_' || s, :tenant,
           CASE WHEN s % 2 = 0 THEN 'message.input' ELSE 'message.output' END,
           CASE WHEN s % 2 = 0 THEN 'user' ELSE 'assistant' END,
           'Stand-in reply: amber basil cedar delta ember fern glade harbor iris',
           jsonb_build_object('object', 'entry', 'id', 'msg_big_' || s,
                              'type', 'message.output', 'role', 'assistant',
                              'content', 'Stand-in reply: amber basil cedar delta ember',
                              'created_at', '2025-01-01T00:00:00Z'),
           timestamptz '2025-01-01' + s * interval '1 second'
    FROM generate_series(0, :last_big_seq) AS s
    """,
    # As autovacuum would have left them: statistics, and a visibility map for index-only
    # scans; then the checkpoint, so it does not land in the middle of a measurement.
    "VACUUM (ANALYZE) conversations",
    "VACUUM (ANALYZE) conversation_entries",
    "CHECKPOINT",
]


def seed(
    database_url: str,
    conversations: int = CONVERSATIONS,
    with_entries: int = WITH_ENTRIES,
    big_entries: int = BIG_ENTRIES,
) -> dict[str, Any]:
    """The tenant's data (smaller sizes only for trying a scenario), unless already there."""
    conn = pg_connect(database_url)
    started = time.perf_counter()
    try:
        there = conn.run("SELECT count(*) FROM conversations WHERE owner_id = :o", o=TENANT)
        params = {
            "tenant": TENANT,
            "big": BIG,
            "last_conversation": conversations - 1,
            "with_entries": with_entries,
            "last_seq": ENTRIES_PER - 1,
            "last_big_seq": big_entries - 1,
        }
        for statement in _SEED if there[0][0] == 0 else ():
            used = {k: v for k, v in params.items() if f":{k}" in statement}
            conn.run(statement, **used)
        entries = conn.run("SELECT count(*) FROM conversation_entries")[0][0]
        conversations = conn.run(
            "SELECT count(*) FROM conversations WHERE owner_id = :o", o=TENANT
        )[0][0]
    finally:
        conn.close()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "entries_stored": entries,
        "tenant_conversations": conversations,
    }


def _cursor_after(url: str, key: str, pages: int) -> str:
    """The cursor of the page `pages` pages in (walked page by page, as a client would)."""
    cursor = ""
    for _ in range(pages):
        status, body = http("GET", url + (f"&cursor={quote(cursor)}" if cursor else ""), key=key)
        if status != 200:
            raise RuntimeError(f"history walk failed: {status} {body[:200]!r}")
        page = json.loads(body)
        cursor = page.get("next_cursor") or page.get("cursor") or ""
        if not cursor:
            raise RuntimeError(f"no cursor in page: {list(page)}")
    return cursor


def history_rows(stack: BenchStack, runs: int = 3, run_s: float = 3) -> list[Row]:
    assert stack.info is not None
    seeded = seed(stack.info.database_url)
    key = stack.create_key("bench history reader", owner=TENANT, role="read_only")
    base = stack.functions["history"]
    entries = f"{base}/gateway/v1/conversations/{BIG}/entries?limit=100"
    conversations = f"{base}/gateway/v1/conversations?limit=100"
    targets = {
        "entries, first page": entries,
        "entries, page at 5,000": entries + "&cursor=" + quote(_cursor_after(entries, key, 50)),
        "conversations, first page": conversations,
        "conversations, page at 50,000": conversations
        + "&cursor="
        + quote(_cursor_after(conversations, key, 500)),
        "Mistral list, first page": f"{base}/v1/conversations?page_size=100",
    }
    for url in targets.values():
        status, body = http("GET", url, key=key)
        if status != 200:
            raise RuntimeError(f"{url} answered {status}: {body[:200]!r}")
        run_wrk(url, key=key, duration_s=1)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, url in targets.items():
            results[name].append(run_wrk(url, key=key, duration_s=run_s).as_dict())
    rows = []
    for name, target in (("entries", "first page"), ("conversations", "first page")):
        first, deep = f"{name}, {target}", next(n for n in targets if n.startswith(name + ", page"))
        p50 = median([r["latency_ms"]["p50"] for r in results[first]])
        p99 = median([r["latency_ms"]["p99"] for r in results[first]])
        deep50 = median([r["latency_ms"]["p50"] for r in results[deep]])
        failed = sum(r["requests"] == 0 or sum(r["errors"].values()) for r in results[first])
        what = (
            "a page of 100 entries of a 10,000-entry conversation"
            if name == "entries"
            else "a page of 100 conversations of a tenant with 100,000"
        )
        rows.append(
            Row(
                scenario=f"History: {what} (1,000,000 entries stored), 1 client, history "
                "instance on its own port",
                target="p50 <= 5 ms",
                measured=f"p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}; {deep.split(', ')[1]}: "
                f"p50 {fmt_ms(deep50)}",
                passed=not failed and p50 <= 5,
                note=f"median of {runs} runs of {run_s:g} s",
                runs=[{"target": n, **r} for n in (first, deep) for r in results[n]],
            )
        )
    mistral = results["Mistral list, first page"]
    rows.append(
        Row(
            scenario="History: Mistral's list (`GET /v1/conversations?page_size=100`), same "
            "tenant (for information)",
            target="-",
            measured=f"p50 {fmt_ms(median([r['latency_ms']['p50'] for r in mistral]))}",
            note=f"seeded in {seeded['seconds']} s: {seeded['entries_stored']:,} entries, "
            f"{seeded['tenant_conversations']:,} conversations in the tenant",
            runs=mistral,
        )
    )
    return rows

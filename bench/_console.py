"""The web console's first paint on the bench data (the history scenario's tenant:
100,000 conversations, 1,000,000 entries), plus 100,000 usage events over the last week.

Each page is loaded cold in a new tab of one headless Debian chromium (Playwright, as
the browser tests drive it), signed in by a key already in sessionStorage. Measured:
from the navigation's start to the frame after the page's data is drawn (the view's
`aria-busy` turns false, then two animation frames), per page, median of the runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _history
from bench._proc import pg_connect
from bench._result import Row, fmt_ms
from bench._stack import BenchStack
from bench._stats import median

__all__ = ["console_rows"]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_MS = 1000
# page -> the hash that opens it and the view that says it is drawn
PAGES = {
    "usage (7 days)": ("#/usage", "usage"),
    "keys": ("#/keys", "keys"),
    "conversations (first 50)": ("#/conversations", "conversations"),
    "conversation (first 200 entries of the longest)": (
        f"#/conversation/{_history.BIG}",
        "conversations",
    ),
    "agents": ("#/agents", "agents"),
    "batches": ("#/batches", "batches"),
    "audit log": ("#/audit", "audit"),
}
_USAGE = """
INSERT INTO usage_events (owner_id, api_key_id, operation, model, conversation_id, status,
                          prompt_tokens, completion_tokens, created_at)
SELECT :tenant, 'key_bench_' || (g % 5), 'conversations.start',
       CASE WHEN g % 3 = 0 THEN 'mistral-large-latest' ELSE 'mistral-small-latest' END,
       'bh_' || lpad(g::text, 8, '0'), CASE WHEN g % 50 = 0 THEN 500 ELSE 200 END, 12, 16,
       now() - (g % 10080) * interval '1 minute'
FROM generate_series(0, :last) AS g
"""
_DRAWN = """async (view) => {
  const sel = `#view[data-view="${view}"][aria-busy="false"]`;
  while (!document.querySelector(sel)) await new Promise(r => setTimeout(r, 2));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return {drawn: performance.now(), fcp: fcp ? fcp.startTime : null};
}"""


def _admin_key(database_url: str, redis_url: str) -> str:
    from shared.config import Settings
    from shared.container import Container
    from shared.tenancy.keys import create_key

    container = Container(Settings(database_url=database_url, redis_url=redis_url))
    try:
        with container.pool.transaction() as conn:
            key = create_key(
                conn,
                owner_id=_history.TENANT,
                name="bench console",
                role="admin",
                limits={"rate_limit_requests": 1_000_000, "rate_limit_window": 60},
            )
    finally:
        container.close()
    return key.secret


_SIZES = """
SELECT (SELECT count(*) FROM conversations WHERE owner_id = :o),
       (SELECT count(*) FROM conversation_entries WHERE owner_id = :o),
       (SELECT count(*) FROM usage_events WHERE owner_id = :o)
"""


def _sizes(database_url: str) -> tuple[int, int, int]:
    """What the tenant holds: conversations, entries, usage events."""
    conn = pg_connect(database_url)
    try:
        conversations, entries, events = conn.run(_SIZES, o=_history.TENANT)[0]
    finally:
        conn.close()
    return int(conversations), int(entries), int(events)


def _seed_usage(database_url: str, events: int) -> None:
    conn = pg_connect(database_url)
    try:
        there = conn.run("SELECT count(*) FROM usage_events WHERE owner_id = :o", o=_history.TENANT)
        if there[0][0] == 0:
            conn.run(_USAGE, tenant=_history.TENANT, last=events - 1)
            conn.run("VACUUM (ANALYZE) usage_events")
    finally:
        conn.close()


def _loads(url: str, key: str, runs: int) -> dict[str, list[dict[str, float]]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[dict[str, float]]] = {page: [] for page in PAGES}
    with tempfile.TemporaryDirectory(prefix="bench-console-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(Path(profile)),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1366, "height": 768},
        )
        context.add_init_script(f"sessionStorage.setItem('gateway-console-key', {key!r})")
        try:
            for run in range(runs + 1):  # the first round warms the instance and the cache
                for name, (fragment, view) in PAGES.items():
                    page = context.new_page()
                    page.goto(url + "/gateway/v1/console" + fragment)
                    found = page.evaluate(_DRAWN, view)
                    errors = page.query_selector("#view .error")
                    page.close()
                    if errors is not None:
                        raise RuntimeError(f"the console's {name} page showed an error")
                    if run:
                        times[name].append(found)
        finally:
            context.close()
    return times


def console_rows(
    stack: BenchStack,
    runs: int = 5,
    seed: Callable[[str], Any] = _history.seed,
    usage_events: int = 100_000,
) -> list[Row]:
    assert stack.info is not None
    seed(stack.info.database_url)
    _seed_usage(stack.info.database_url, usage_events)
    conversations, entries, events = _sizes(stack.info.database_url)
    key = _admin_key(stack.info.database_url, stack.info.redis_url)
    times = _loads(stack.info.url, key, runs)
    drawn = {name: median([t["drawn"] for t in runs_]) for name, runs_ in times.items()}
    worst = max(drawn.values())
    fcp = median([t["fcp"] for runs_ in times.values() for t in runs_ if t["fcp"] is not None])
    return [
        Row(
            scenario="Console: first paint of each page's data, on the history data "
            f"({conversations:,} conversations, {entries:,} entries) and {events:,} usage "
            "events, headless chromium, through the local router",
            target=f"each page < {TARGET_MS} ms",
            measured=f"slowest {fmt_ms(worst, 0)}; "
            + ", ".join(f"{name} {fmt_ms(ms, 0)}" for name, ms in drawn.items()),
            passed=worst < TARGET_MS,
            note=f"median of {runs} cold loads per page (new tab, after one warm-up round); "
            f"first contentful paint (the shell) {fmt_ms(fcp, 0)}",
            runs=[{"page": name, **t} for name, runs_ in times.items() for t in runs_],
        )
    ]

"""The web console's first paint on the bench data (the history scenario's tenant:
100,000 conversations, 1,000,000 entries), plus 100,000 usage events over the last week,
100 agents (one with versions and an alias) and 1,000 batches (one of 1,000 items).

Each page is loaded cold in a new tab of one headless Debian chromium (Playwright, as
the browser tests drive it), signed in as sign-in leaves a tab: the key and its whoami
already in sessionStorage, so a load asks only for its data. Measured per page, median of
the runs: the first contentful paint (the console's shell), and from the navigation's
start to the frame after the page's data is drawn (the view's `aria-busy` turns false,
then two animation frames); beside them, the API requests the page made (every request
but the console's own assets; `+` joins those sent at once) and the rows it drew.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _history
from bench._proc import http, pg_connect
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
AGENTS = 100
BIG_BATCH = "bb_000000"
# page -> the hash that opens it and the view that says it is drawn (an agent's page is
# filled in once the agents exist)
PAGES = {
    "usage (7 days)": ("#/usage", "usage"),
    "keys": ("#/keys", "keys"),
    "conversations (first 50)": ("#/conversations", "conversations"),
    "conversation (first 200 entries of the longest)": (
        f"#/conversation/{_history.BIG}",
        "conversations",
    ),
    "agents (first 50 of 100)": ("#/agents", "agents"),
    "agent (versions, aliases)": ("#/agent/", "agents"),
    "batches (first 50)": ("#/batches", "batches"),
    "batch (1,000 items: its counts, first 100 items)": (f"#/batch/{BIG_BATCH}", "batches"),
    "audit log": ("#/audit", "audit"),
}
# 1,000 batches, newest first from bb_000000 (running: 1,000 items, 700 done, 35 failed);
# the others 10 items each, done.
_BATCHES = [
    """
    INSERT INTO batches (id, owner_id, status, item_count, published_at, created_at, updated_at)
    SELECT 'bb_' || lpad(g::text, 6, '0'), :tenant,
           CASE WHEN g = 0 THEN 'running' WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
           CASE WHEN g = 0 THEN 1000 ELSE 10 END,
           now() - g * interval '1 hour', now() - g * interval '1 hour',
           now() - g * interval '1 hour'
    FROM generate_series(0, 999) AS g
    """,
    """
    INSERT INTO batch_items (batch_id, idx, owner_id, custom_id, status, request,
                             conversation_id, error, attempts, finished_at)
    SELECT 'bb_' || lpad(b::text, 6, '0'), i, :tenant, 'item-' || i,
           CASE WHEN b = 0 AND i >= 700 THEN 'pending'
                WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
           jsonb_build_object('model', 'mistral-small-latest', 'inputs', 'Hello ' || i),
           CASE WHEN (b = 0 AND i >= 700) OR i % 20 = 0 THEN NULL
                ELSE 'bh_' || lpad((b * 10 + i + 1)::text, 8, '0') END,
           CASE WHEN i % 20 = 0 AND NOT (b = 0 AND i >= 700)
                THEN jsonb_build_object('message', 'upstream refused the request') END,
           1, now()
    FROM generate_series(0, 999) AS b,
         generate_series(0, 999) AS i
    WHERE i < CASE WHEN b = 0 THEN 1000 ELSE 10 END
    """,
    "VACUUM (ANALYZE) batches",
    "VACUUM (ANALYZE) batch_items",
]
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
  const signIn = document.querySelector("#signin");
  const end = performance.now() + 30000;
  while (!document.querySelector(sel)) {
    if (signIn && !signIn.hidden && signIn.querySelector("#signin-error").textContent)
      throw new Error("sign-in refused: " + signIn.querySelector("#signin-error").textContent);
    if (performance.now() > end) throw new Error(`the ${view} view was not drawn in 30 s`);
    await new Promise(r => setTimeout(r, 2));
  }
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const drawn = performance.now();
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const rows = document.querySelectorAll("#view tbody tr, #view li.entry").length;
  // The API's answers (resource timing): when the first was asked, when the last arrived.
  const api = performance.getEntriesByType("resource")
    .filter(e => !new URL(e.name).pathname.startsWith("/gateway/v1/console"));
  const asked = api.length ? Math.min(...api.map(e => e.startTime)) : null;
  const answered = api.length ? Math.max(...api.map(e => e.responseEnd)) : null;
  return {drawn, fcp: fcp ? fcp.startTime : null, rows, api_first_asked: asked,
          api_last_answered: answered};
}"""


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


def _seed_batches(database_url: str) -> None:
    conn = pg_connect(database_url)
    try:
        there = conn.run("SELECT count(*) FROM batches WHERE owner_id = :o", o=_history.TENANT)
        for statement in _BATCHES if there[0][0] == 0 else ():
            conn.run(statement, **({"tenant": _history.TENANT} if ":tenant" in statement else {}))
    finally:
        conn.close()


def _seed_agents(url: str, key: str, count: int = AGENTS) -> str:
    """`count` agents made through the gateway (the stand-in holds their versions); the
    first made gets four more versions and an alias. Its id is returned."""

    def send(method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, raw = http(method, url + path, body, key=key)
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}: {raw[:300]!r}")
        return dict(json.loads(raw))

    first = ""
    for n in range(count):
        made = send(
            "POST",
            "/v1/agents",
            {
                "name": f"bench agent {n}",
                "model": "mistral-small-latest",
                "instructions": "Be brief.",
            },
        )
        first = first or str(made["id"])
    for version in range(4):
        send("PATCH", f"/v1/agents/{first}", {"instructions": f"Be brief ({version})."})
    send("PUT", f"/v1/agents/{first}/aliases?alias=production&version=2")
    return first


def _recorder(asked: list[str]) -> Callable[[Any], None]:
    """A request listener keeping each API request's path and query (the console's own
    assets left out)."""

    def note(request: Any) -> None:
        path = "/" + str(request.url).split("://", 1)[-1].split("/", 1)[-1]
        if not path.startswith(("/gateway/v1/console", "/favicon")):
            asked.append(path)

    return note


def _loads(
    url: str, key: str, runs: int, pages: dict[str, tuple[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    status, me = http("GET", url + "/gateway/v1/whoami", key=key)
    if status != 200:
        raise RuntimeError(f"whoami answered {status}: {me[:300]!r}")
    from playwright.sync_api import sync_playwright

    times: dict[str, list[dict[str, Any]]] = {page: [] for page in pages}
    with tempfile.TemporaryDirectory(prefix="bench-console-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(Path(profile)),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1366, "height": 768},
        )
        # The tab as sign-in leaves it: the key and its whoami (asked once, at sign-in).
        context.add_init_script(
            f"sessionStorage.setItem('gateway-console-key', {key!r});"
            f"sessionStorage.setItem('gateway-console-whoami', {json.dumps(me.decode())});"
        )
        try:
            for run in range(runs + 1):  # the first round warms the instance and the cache
                for name, (fragment, view) in pages.items():
                    page = context.new_page()
                    asked: list[str] = []
                    page.on("request", _recorder(asked))
                    page.goto(url + "/gateway/v1/console" + fragment)
                    found = page.evaluate(_DRAWN, view)
                    errors = page.query_selector("#view .error")
                    page.close()
                    if errors is not None:
                        raise RuntimeError(f"the console's {name} page showed an error")
                    if run:
                        times[name].append({**found, "requests": asked})
        finally:
            context.close()
    return times


def _requests_said(asked: list[str], ids: dict[str, str]) -> str:
    """`usage`, `agents/{agent_id} + ...`: the paths (no query) a load asked for, in order;
    `+` joins those the page sends at once (a load that had to sign in first shows
    `whoami, then ...`)."""
    paths = []
    for full in asked:
        path = full.split("?", 1)[0].removeprefix("/gateway/v1/").removeprefix("/")
        for value, name in ids.items():
            path = path.replace(value, "{" + name + "}")
        paths.append(path)
    if paths and paths[0] == "whoami":
        return "whoami, then " + (" + ".join(paths[1:]) or "nothing")
    return " + ".join(paths) or "none"


def console_rows(
    stack: BenchStack,
    runs: int = 5,
    seed: Callable[[str], Any] = _history.seed,
    usage_events: int = 100_000,
) -> list[Row]:
    assert stack.info is not None
    seed(stack.info.database_url)
    _seed_usage(stack.info.database_url, usage_events)
    _seed_batches(stack.info.database_url)
    conversations, entries, events = _sizes(stack.info.database_url)
    key = stack.create_key("bench console", owner=_history.TENANT, role="admin")
    agent = _seed_agents(stack.info.url, key)
    pages = dict(PAGES)
    fragment, view = pages["agent (versions, aliases)"]
    pages["agent (versions, aliases)"] = (fragment + agent, view)
    load_before = os.getloadavg()
    times = _loads(stack.info.url, key, runs, pages)
    load_after = os.getloadavg()
    load = (
        f"load average {load_before[0]:.2f} / {load_before[1]:.2f} (1 / 5 min) before, "
        f"{load_after[0]:.2f} / {load_after[1]:.2f} after"
    )
    data = (
        f"{conversations:,} conversations, {entries:,} entries, {events:,} usage events, "
        f"{AGENTS} agents, 1,000 batches"
    )
    ids = {
        agent: "agent_id",
        BIG_BATCH: "batch_id",
        _history.BIG: "conversation_id",
        _history.TENANT: "tenant",
    }
    rows = []
    for name, runs_ in times.items():
        drawn = median([t["drawn"] for t in runs_])
        fcps = [t["fcp"] for t in runs_ if t["fcp"] is not None]
        fcp = median(fcps) if fcps else float("nan")
        asked = runs_[-1]["requests"]
        asked_at = median([t["api_first_asked"] or float("nan") for t in runs_])
        answered_at = median([t["api_last_answered"] or float("nan") for t in runs_])
        rows.append(
            Row(
                scenario=f"Console page: {name}, one cold load in headless chromium "
                "through the local router",
                target=f"data drawn < {TARGET_MS} ms",
                measured=f"data drawn {fmt_ms(drawn, 0)} (first contentful paint "
                f"{fmt_ms(fcp, 0)}; API asked at {fmt_ms(asked_at, 0)}, last answer at "
                f"{fmt_ms(answered_at, 0)}); {runs_[-1]['rows']} rows drawn",
                passed=drawn < TARGET_MS,
                note=f"median of {runs} cold loads (new tab, after one warm-up round); "
                f"{len(asked)} API requests: {_requests_said(asked, ids)}; tenant with "
                f"{data}; {load}",
                runs=[{"page": name, **t} for t in runs_],
            )
        )
    return rows

"""The web console in a real headless Chromium (Debian's), against the whole local stack.

One browser for the session; each test opens its own tab (so its own sessionStorage,
where the console keeps the key) and records every request the page makes. Screenshots
of the main pages go to `CONSOLE_SCREENSHOTS` (default: the session's temporary
directory); `docs/screenshots/` holds a committed set.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key

CHROMIUM = Path("/usr/bin/chromium")
# The flags of a quiet, offline, throwaway browser: nothing fetched but what a page asks.
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
TENANT = "console-co"
MODEL = "mistral-small-latest"
CONSOLE = "/gateway/v1/console"
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _http(stack: StackInfo, method: str, path: str, key: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(stack.url + path, data=data, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read() or b"null")


@dataclass(frozen=True)
class Tenant:
    keys: dict[str, NewKey]
    conversation_id: str
    archived_id: str
    agent_id: str
    batch_id: str


def _deliver_batch(stack: StackInfo, message: dict[str, Any]) -> None:
    """The batch message, posted to the batch function as the Pub/Sub push would."""
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(message).encode()).decode(),
            "messageId": "console-" + message["batch_id"],
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": "projects/local/subscriptions/console-test",
    }
    request = urllib.request.Request(  # noqa: S310 - loopback
        stack.functions["batch"] + "/gateway/v1/batches/events",
        data=json.dumps(envelope).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
        assert answer.status == 200


@pytest.fixture(scope="session")
def tenant(stack: StackInfo, stack_container: Container) -> Tenant:
    """A tenant with a key per role and a conversation holding a tool call and its result."""
    keys = {}
    with stack_container.pool.transaction() as conn:
        for role in ("operator", "admin", "user", "read_only"):
            keys[role] = create_key(conn, owner_id=TENANT, name=f"console {role}", role=role)
    user = keys["user"].secret
    started = _http(
        stack,
        "POST",
        "/v1/conversations",
        user,
        {"model": MODEL, "inputs": "What is the weather in Lyon?", "tools": [TOOL]},
    )
    call = next(o for o in started["outputs"] if o["type"] == "function.call")
    result = {"type": "function.result", "tool_call_id": call["tool_call_id"], "result": "sunny"}
    _http(
        stack, "POST", f"/v1/conversations/{started['conversation_id']}", user, {"inputs": [result]}
    )
    admin = keys["admin"].secret
    _http(stack, "POST", "/v1/conversations", admin, {"model": "other", "inputs": "hi"})
    blue = {"model": MODEL, "inputs": "archive me", "metadata": {"team": "blue"}}
    archived = _http(stack, "POST", "/v1/conversations", user, blue)["conversation_id"]
    _http(stack, "POST", f"/gateway/v1/conversations/{archived}/archive", user)
    agent = _http(stack, "POST", "/v1/agents", admin, {"model": MODEL, "name": "helper"})
    _http(stack, "PATCH", f"/v1/agents/{agent['id']}", admin, {"instructions": "Be brief."})
    _http(stack, "PUT", f"/v1/agents/{agent['id']}/aliases?alias=stable&version=0", admin)
    items = [{"custom_id": f"ok-{i}", "model": MODEL, "inputs": f"item {i}"} for i in range(2)]
    items.append({"custom_id": "broken", "agent_id": "ag_nobody", "inputs": "x"})
    _deliver_batch(stack, {"batch_id": "console-batch", "owner": TENANT, "items": items})
    return Tenant(keys, started["conversation_id"], archived, agent["id"], "console-batch")


# One browser for this module's tests. Not the session's: Playwright's sync API runs an
# event loop in this thread while it is open, and later tests call asyncio.run().
@pytest.fixture(scope="module")
def browser_context(tmp_root: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: `make chromium` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_root / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1366, "height": 768},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def shots(tmp_root: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_root / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# WCAG 2 contrast of every visible text against the background it sits on (SVG aside).
_LOW_CONTRAST = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(",").map(Number);
    return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c.rgb;
    }
    return [255, 255, 255];
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || el.closest("svg") || !el.offsetParent) continue;
    const [a, b] = [lum(parse(getComputedStyle(el).color).rgb), lum(behind(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${node.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)}`);
  }
  return low;
}"""
# Form controls with neither a <label> nor an aria-label.
_UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter((e) => e.offsetParent && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
  .map((e) => e.name || e.id)"""


@dataclass
class Console:
    """One tab of the console, and every URL it asked for."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)

    def open(self, hash_: str = "") -> None:
        self.page.goto(self.base + CONSOLE + hash_)

    def sign_in(self, secret: str) -> None:
        self.page.fill("#key", secret)
        self.page.press("#key", "Enter")

    def view(self, name: str) -> Any:
        """Go to a view by its menu link and wait until its data is shown."""
        self.page.click(f'#nav a[data-view="{name}"]')
        return self.wait(name)

    def wait(self, name: str) -> Any:
        return self.page.wait_for_selector(f'#view[data-view="{name}"][aria-busy="false"]')

    def menu(self) -> list[str]:
        return self.page.eval_on_selector_all("#nav a", "links => links.map(a => a.dataset.view)")

    def outside(self) -> list[str]:
        """Requests to anywhere but the gateway (data: and blob: URLs are the page's own)."""
        origin = urlsplit(self.base)
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url)[:2] != origin[:2]
        ]


@pytest.fixture
def console(browser_context: Any, stack: StackInfo) -> Iterator[Console]:
    page = browser_context.new_page()
    tab = Console(page, stack.url)
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield tab
    finally:
        page.close()


# -- signing in ----------------------------------------------------------------------------------


def test_a_wrong_key_is_refused(console: Console) -> None:
    """A key the gateway does not know is refused at sign-in; no view is shown."""
    console.open()
    console.sign_in("mgw_" + "x" * 43)
    error = console.page.wait_for_selector("#signin-error:has-text('not valid')")
    assert "not valid" in error.inner_text()
    assert console.page.is_hidden("#nav")
    assert console.page.is_hidden("#view")


# What each role's menu holds, written out by hand (README "API keys and roles").
MENUS = {
    # The operator runs the deployment: no conversation content, no agents.
    "operator": ["usage", "keys", "audit", "tenants", "health"],
    "admin": ["usage", "keys", "conversations", "agents", "batches", "audit", "health"],
    "user": ["usage", "conversations", "agents", "batches"],
    "read_only": ["usage", "conversations", "batches"],
}


@pytest.mark.parametrize("role", sorted(MENUS))
def test_each_role_sees_only_its_views(console: Console, tenant: Tenant, role: str) -> None:
    """The menu holds exactly the role's views; a hidden view's address shows the first one."""
    console.open("#/keys")
    console.sign_in(tenant.keys[role].secret)
    console.wait("keys" if "keys" in MENUS[role] else MENUS[role][0])
    assert console.menu() == MENUS[role]
    assert role in console.page.inner_text("#who")
    assert console.page.is_hidden("#signin")
    if "keys" not in MENUS[role]:
        assert console.page.query_selector("#keys-table") is None


def test_the_key_stays_in_the_tab_only(console: Console, tenant: Tenant) -> None:
    """The key and its whoami are in sessionStorage, never localStorage or a cookie, and gone
    on sign-out."""
    console.open()
    console.sign_in(tenant.keys["user"].secret)
    console.wait("usage")
    stored = console.page.evaluate("() => ({...sessionStorage})")
    assert stored.pop("gateway-console-key") == tenant.keys["user"].secret
    me = json.loads(stored.pop("gateway-console-whoami"))
    assert (me["key_id"], me["role"]) == (tenant.keys["user"].principal.key_id, "user")
    assert stored == {}
    assert console.page.evaluate("() => localStorage.length") == 0
    assert console.page.context.cookies() == []
    console.page.click("#signout")
    assert console.page.evaluate("() => sessionStorage.length") == 0
    assert console.page.is_visible("#signin")


# -- keys ----------------------------------------------------------------------------------------


def test_an_admin_creates_and_revokes_a_key(
    console: Console, tenant: Tenant, stack: StackInfo
) -> None:
    """The new key's secret is shown once and works; revoking it marks it revoked in the API,
    and the audit log shows both."""
    admin = tenant.keys["admin"].secret
    console.open("#/keys")
    console.sign_in(admin)
    console.wait("keys")
    console.page.click("summary:has-text('Create a key')")
    console.page.fill("#key-name", "made in the browser")
    console.page.select_option("select[name=role]", "read_only")
    console.page.click("button:has-text('Create key')")
    secret = console.page.wait_for_selector("#new-secret").inner_text()
    assert secret.startswith("mgw_")
    me = _http(stack, "GET", "/gateway/v1/whoami", secret)
    assert (me["role"], me["owner_id"], me["name"]) == ("read_only", TENANT, "made in the browser")

    console.page.click(f"button[aria-label='Revoke key {me['prefix']}']")
    console.page.wait_for_selector(f"#key-notice:has-text('{me['prefix']}… revoked')")
    keys = _http(stack, "GET", "/gateway/v1/keys?limit=1000", admin)["data"]
    assert next(k for k in keys if k["id"] == me["key_id"])["revoked_at"] is not None
    row = console.page.locator("#keys-table tr", has_text=me["prefix"])
    assert "revoked" in row.inner_text()

    console.view("audit")
    actions = console.page.locator("#audit-table tr", has_text=me["key_id"]).all_inner_texts()
    assert [a.split("\t")[3] for a in actions] == ["key.revoke", "key.create"]


# -- conversations -------------------------------------------------------------------------------


def test_a_conversation_reads_with_its_tool_call(
    console: Console, tenant: Tenant, shots: Path
) -> None:
    """The question, the tool call (name and arguments), its result and the answer, in order."""
    console.open()
    console.sign_in(tenant.keys["read_only"].secret)
    console.view("conversations")
    console.page.click(f"a:has-text('{tenant.conversation_id}')")
    console.page.wait_for_selector("li.entry[data-type='message.output']")
    types = console.page.eval_on_selector_all("li.entry", "items => items.map(i => i.dataset.type)")
    assert types == ["message.input", "function.call", "function.result", "message.output"]
    call = console.page.inner_text("li.entry[data-type='function.call']")
    assert "lookup_weather" in call
    assert "tool call" in call
    assert "sunny" in console.page.inner_text("li.entry[data-type='function.result']")
    console.page.screenshot(path=shots / "conversation.png", full_page=True)


# -- usage ---------------------------------------------------------------------------------------


def test_the_usage_chart_plots_the_usage_apis_figures(
    console: Console, tenant: Tenant, stack: StackInfo, shots: Path
) -> None:
    """Each bar segment's value is the API's figure for its day and model, its height to scale."""
    console.open()
    console.sign_in(tenant.keys["admin"].secret)
    console.wait("usage")
    console.page.select_option("select[name=split]", "model")
    console.page.select_option("select[name=measure]", "total_tokens")
    console.page.click("button:has-text('Show')")
    console.page.wait_for_selector("figcaption:has-text('by model')")
    bars = console.page.eval_on_selector_all(
        "svg.chart rect",
        "rs => rs.map(r => [r.dataset.period, r.dataset.series, Number(r.dataset.value),"
        " Number(r.getAttribute('height'))])",
    )
    scale = float(console.page.get_attribute("svg.chart", "data-scale") or 0)
    today = datetime.now(UTC).date()
    since = today - timedelta(days=6)
    figures = _http(
        stack,
        "GET",
        f"/gateway/v1/usage?from={since}&to={today}&group_by=day,model",
        tenant.keys["admin"].secret,
    )["data"]
    expected = sorted((r["day"], r["model"], r["total_tokens"]) for r in figures)
    assert sorted((p, s, v) for p, s, v, _ in bars) == expected
    assert {r[1] for r in bars} == {MODEL, "other"}
    for _, _, value, height in bars:
        assert height == pytest.approx(value * scale)
    total = sum(r["total_tokens"] for r in figures)
    assert console.page.inner_text("#total-tokens") == f"{total:,}"
    console.page.screenshot(path=shots / "usage.png", full_page=True)


def test_usage_figures_download_as_csv(console: Console, tenant: Tenant) -> None:
    """The CSV holds the table's rows: a header and one line per day and model."""
    console.open()
    console.sign_in(tenant.keys["user"].secret)
    console.wait("usage")
    console.page.select_option("select[name=split]", "model")
    console.page.click("button:has-text('Show')")
    console.page.wait_for_selector("figcaption:has-text('by model')")
    with console.page.expect_download() as download:
        console.page.click("button:has-text('Download CSV')")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].split(",")[:2] == ["day", "model"]
    assert len(lines) == 1 + console.page.locator("#usage-table tbody tr").count()


# -- every page, from the gateway alone ------------------------------------------------------------


def test_every_view_loads_from_the_gateway_alone(
    console: Console, tenant: Tenant, stack: StackInfo, shots: Path
) -> None:
    """Across every admin view, each request the page makes goes to the gateway itself; every
    text meets WCAG AA contrast and every control has a label."""
    console.open()
    console.sign_in(tenant.keys["admin"].secret)
    console.wait("usage")
    for name in MENUS["admin"]:
        console.view(name)
        assert console.page.query_selector("#view .error") is None, name
        shown = console.page.inner_text("#view")
        assert "null" not in shown.split(), name
        assert "undefined" not in shown, name
        assert console.page.evaluate(_LOW_CONTRAST) == [], name
        assert console.page.evaluate(_UNLABELLED) == [], name
        console.page.screenshot(path=shots / f"{name}.png", full_page=True)
    # The checks can fail: a pale text and a bare input are found.
    console.page.evaluate(
        """() => { const p = document.createElement("p"); p.textContent = "pale";
        p.style.color = "#bbbbbb"; const i = document.createElement("input"); i.name = "bare";
        document.querySelector("#view").append(p, i); }"""
    )
    assert console.page.evaluate(_LOW_CONTRAST) == ["pale: 1.92"]
    assert console.page.evaluate(_UNLABELLED) == ["bare"]
    assert any(url.endswith("/gateway/v1/console/chart.js") for url in console.requests)
    assert console.outside() == []
    health = console.page.inner_text("#health-table")
    assert console.page.locator("#audit-table").count() == 0  # the last view is health
    assert health.count("reachable") == 6
    assert "closed" in health


def test_an_operator_sees_tenants_and_every_tenants_audit(
    console: Console, tenant: Tenant, stack: StackInfo, shots: Path
) -> None:
    """The operator's tenant list holds the console's tenant; its audit log crosses tenants."""
    console.open()
    console.sign_in(tenant.keys["operator"].secret)
    console.view("tenants")
    console.page.wait_for_selector("#tenants-table")
    console.page.screenshot(path=shots / "tenants.png", full_page=True)
    listed = _http(stack, "GET", "/gateway/v1/tenants?limit=1000", tenant.keys["operator"].secret)
    shown = console.page.eval_on_selector_all(
        "#tenants-table tbody tr td:first-child", "cells => cells.map(c => c.innerText)"
    )
    assert shown == [t["id"] for t in listed["data"]][:50]
    console.view("audit")
    assert console.page.query_selector("#view .error") is None
    console.page.screenshot(path=shots / "audit.png", full_page=True)
    assert console.outside() == []


def test_conversations_are_found_by_metadata_and_archived_ones_marked(
    console: Console, tenant: Tenant
) -> None:
    """A metadata search finds the one archived conversation; it is marked in list and reading."""
    console.open()
    console.sign_in(tenant.keys["user"].secret)
    console.view("conversations")
    console.page.fill("input[name=metadata]", '{"team": "blue"}')
    console.page.click("button:has-text('Search')")
    console.page.wait_for_selector(f"#conversations-table a:has-text('{tenant.archived_id}')")
    rows = console.page.locator("#conversations-table tbody tr").all_inner_texts()
    assert len(rows) == 1
    assert "archived" in rows[0]
    console.page.click(f"a:has-text('{tenant.archived_id}')")
    console.page.wait_for_selector("li.entry[data-type='message.output']")
    assert console.page.locator("#view .badge.archived").count() == 1


def test_a_search_by_id_opens_the_conversation(console: Console, tenant: Tenant) -> None:
    """Typing an id in the search opens that conversation's entries."""
    console.open()
    console.sign_in(tenant.keys["read_only"].secret)
    console.view("conversations")
    console.page.fill("input[name=id]", tenant.conversation_id)
    console.page.press("input[name=id]", "Enter")
    console.page.wait_for_selector("li.entry[data-type='function.call']")
    assert tenant.conversation_id in console.page.inner_text("#view h2")


def test_an_agent_shows_its_versions_and_aliases(
    console: Console, tenant: Tenant, stack: StackInfo
) -> None:
    """The agent page lists the versions and the alias Mistral holds for it."""
    console.open()
    console.sign_in(tenant.keys["user"].secret)
    console.view("agents")
    console.page.click("#agents-table a:has-text('helper')")
    console.page.wait_for_selector("caption:has-text('Aliases')")
    versions = _http(
        stack, "GET", f"/v1/agents/{tenant.agent_id}/versions", tenant.keys["user"].secret
    )
    tables = console.page.locator("#view table")
    assert tables.nth(0).locator("tbody tr").count() == len(versions) == 2
    assert "stable" in tables.nth(1).inner_text()


def test_a_batch_shows_its_progress_and_failed_item(
    console: Console, tenant: Tenant, shots: Path
) -> None:
    """A finished batch of three, one failed: the progress is full and the failure named."""
    console.open()
    console.sign_in(tenant.keys["read_only"].secret)
    console.view("batches")
    console.page.click(f"#batches-table a:has-text('{tenant.batch_id}')")
    console.page.wait_for_selector("#batch-items")
    progress = console.page.locator("#batch-progress")
    assert (progress.get_attribute("value"), progress.get_attribute("max")) == ("3", "3")
    assert "1 failed" in console.page.inner_text("label[for=batch-progress]")
    failed = console.page.locator("#batch-items tr", has_text="broken").inner_text()
    assert "failed" in failed
    console.page.screenshot(path=shots / "batch.png", full_page=True)


def test_an_admin_rotates_a_key_with_grace(
    console: Console, tenant: Tenant, stack: StackInfo, stack_container: Container
) -> None:
    """Rotating with an hour's grace shows the new secret; old and new both work."""
    with stack_container.pool.transaction() as conn:
        old = create_key(conn, owner_id=TENANT, name="to rotate", role="user")
    console.open("#/keys")
    console.sign_in(tenant.keys["admin"].secret)
    console.wait("keys")
    console.page.click(f"button[aria-label='Rotate key {old.principal.prefix}']")
    console.page.fill("#rotate-grace", "3600")
    console.page.click("button:has-text('Rotate now')")
    secret = console.page.wait_for_selector("#new-secret").inner_text()
    assert secret != old.secret
    assert _http(stack, "GET", "/gateway/v1/whoami", secret)["key_id"] == old.principal.key_id
    assert _http(stack, "GET", "/gateway/v1/whoami", old.secret)["key_id"] == old.principal.key_id
    keys = _http(stack, "GET", "/gateway/v1/keys?limit=1000", tenant.keys["admin"].secret)["data"]
    expires = next(k for k in keys if k["id"] == old.principal.key_id)["previous_secret_expires_at"]
    left = datetime.fromisoformat(expires.replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(minutes=55) < left <= timedelta(hours=1)


def test_the_console_works_from_the_keyboard_alone(console: Console, tenant: Tenant) -> None:
    """Sign in, then reach a view by Tab and Enter; the view's heading takes the focus."""
    console.open()
    console.page.keyboard.type(tenant.keys["admin"].secret)  # the key field has the focus
    console.page.keyboard.press("Enter")
    console.wait("usage")
    for _ in range(30):
        console.page.keyboard.press("Tab")
        if console.page.evaluate("() => document.activeElement.dataset.view") == "keys":
            break
    console.page.keyboard.press("Enter")
    console.wait("keys")
    assert console.page.evaluate("() => document.activeElement.tagName") == "H2"
    assert console.page.evaluate("() => document.activeElement.textContent") == "Keys"


def test_the_usage_chart_per_hour_plots_the_apis_hours(
    console: Console, tenant: Tenant, stack: StackInfo
) -> None:
    """Per hour, by key: one bar segment per hour and key the API reports, same requests."""
    console.open()
    console.sign_in(tenant.keys["admin"].secret)
    console.wait("usage")
    console.page.select_option("select[name=period]", "hour")
    console.page.select_option("select[name=split]", "key")
    console.page.click("button:has-text('Show')")
    console.page.wait_for_selector("figcaption:has-text('per hour, by key')")
    bars = console.page.eval_on_selector_all(
        "svg.chart rect",
        "rs => rs.map(r => [r.dataset.period, r.dataset.series, Number(r.dataset.value)])",
    )
    today = datetime.now(UTC).date()
    figures = _http(
        stack,
        "GET",
        f"/gateway/v1/usage?from={today - timedelta(days=6)}&to={today}&group_by=hour,key",
        tenant.keys["admin"].secret,
    )["data"]
    assert sorted(map(tuple, bars)) == sorted(
        (r["hour"], r["key_id"], r["requests"]) for r in figures
    )
    assert all(p.endswith(":00:00Z") for p, _, _ in bars)


def test_the_usage_view_shows_ocr_pages_and_audio_seconds(
    console: Console, stack: StackInfo, stack_container: Container
) -> None:
    """A tenant's OCR calls: the pages measure plots the API's pages per model, and the
    totals show its pages and seconds of audio."""
    with stack_container.pool.transaction() as conn:
        key = create_key(conn, owner_id="console-ocr", name="ocr", role="user").secret
    for url in ("https://example.com/a.pdf", "https://example.com/b.pdf"):
        document = {"type": "document_url", "document_url": url}
        _http(stack, "POST", "/v1/ocr", key, {"model": "mistral-ocr-latest", "document": document})
    console.open()
    console.sign_in(key)
    console.wait("usage")
    console.page.select_option("select[name=split]", "model")
    console.page.select_option("select[name=measure]", "pages")
    console.page.click("button:has-text('Show')")
    console.page.wait_for_selector("figcaption:has-text('OCR pages per day, by model')")
    bars = console.page.eval_on_selector_all(
        "svg.chart rect", "rs => rs.map(r => [r.dataset.series, Number(r.dataset.value)])"
    )
    totals = _http(stack, "GET", "/gateway/v1/usage?group_by=", key)["totals"]
    assert totals["pages"] >= 2
    assert bars == [["mistral-ocr-latest", totals["pages"]]]
    assert console.page.inner_text("#total-pages") == f"{totals['pages']:,}"
    assert console.page.inner_text("#total-audio-seconds") == "0"


def test_an_operator_creates_and_disables_a_tenant(
    console: Console, tenant: Tenant, stack: StackInfo
) -> None:
    """The tenant form makes the tenant with its budget; Disable marks it disabled in the API."""
    operator = tenant.keys["operator"].secret
    console.open("#/tenants")
    console.sign_in(operator)
    console.wait("tenants")
    console.page.click("summary:has-text('Create a tenant')")
    console.page.fill("input[name=id]", "made-in-console")
    console.page.fill("input[name=name]", "Made in the console")
    console.page.fill("#tenant-token_budget_per_day", "5000")
    console.page.click("button:has-text('Create tenant')")
    console.page.wait_for_selector("#view [role=status]:has-text('made-in-console created')")
    made = _http(stack, "GET", "/gateway/v1/tenants/made-in-console", operator)
    assert (made["name"], made["token_budget_per_day"], made["disabled"]) == (
        "Made in the console",
        5000,
        False,
    )
    row = console.page.locator("#tenants-table tr", has_text="made-in-console")
    row.locator("button:has-text('Disable')").click()
    console.page.locator("#tenants-table tr", has_text="made-in-console").locator(
        "button:has-text('Enable')"
    ).wait_for()
    assert _http(stack, "GET", "/gateway/v1/tenants/made-in-console", operator)["disabled"] is True


def test_todays_tokens_are_shown_against_the_tenants_daily_budget(
    console: Console, tenant: Tenant, stack: StackInfo
) -> None:
    """With a tenant budget set by the operator, the meter holds today's tokens out of it."""
    operator, admin = tenant.keys["operator"].secret, tenant.keys["admin"].secret
    _http(
        stack, "PATCH", f"/gateway/v1/tenants/{TENANT}", operator, {"token_budget_per_day": 10**6}
    )
    try:
        console.open()
        console.sign_in(admin)
        console.wait("usage")
        meter = console.page.wait_for_selector("#budget-meter")
        today = datetime.now(UTC).date()
        used = _http(stack, "GET", f"/gateway/v1/usage?from={today}&to={today}", admin)
        assert meter.get_attribute("max") == str(10**6)
        assert meter.get_attribute("value") == str(used["totals"]["total_tokens"])
        assert "in force for this key in tenant console-co" in console.page.inner_text("#budget")
        # The budget is whoami's, held since sign-in: the page asked only for the usage.
        assert [u for u in _api(console.requests) if not u.endswith("/whoami")] == [
            "/gateway/v1/usage"
        ]
    finally:
        _http(
            stack,
            "PATCH",
            f"/gateway/v1/tenants/{TENANT}",
            operator,
            {"token_budget_per_day": None},
        )


# -- one request per page load ---------------------------------------------------------------------


def _api(urls: list[str]) -> list[str]:
    """The API paths (no query) among a page's requests: the console's own assets left out."""
    paths = [urlsplit(url).path for url in urls]
    return [p for p in paths if not p.startswith(CONSOLE) and p != "/favicon.ico"]


PAGING_TENANT = "console-pages"
PAGED_AGENTS = 51  # one more than the agents page holds
BIG_BATCH = "console-many"
_BIG_BATCH_SQL = [
    """
    INSERT INTO batches (id, owner_id, status, item_count, published_at, created_at, updated_at)
    VALUES (:id, :owner, 'running', 150, now(), now(), now())
    """,
    # 150 items: 0-129 finished (every tenth failed), 130-149 pending; the first page (100)
    # holds only finished ones, so progress counted from it would say 100.
    """
    INSERT INTO batch_items (batch_id, idx, owner_id, custom_id, status, request, error,
                             attempts, finished_at)
    SELECT :id, i, :owner, 'item-' || i,
           CASE WHEN i >= 130 THEN 'pending' WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
           jsonb_build_object('model', 'mistral-small-latest', 'inputs', 'hi'),
           CASE WHEN i < 130 AND i % 10 = 0 THEN jsonb_build_object('message', 'refused') END,
           CASE WHEN i >= 130 THEN 0 ELSE 1 END,
           CASE WHEN i >= 130 THEN NULL ELSE now() END
    FROM generate_series(0, 149) AS i
    """,
]


@dataclass(frozen=True)
class Paging:
    admin: str
    agent_names: list[str]


@pytest.fixture(scope="module")
def paging(stack: StackInfo, stack_container: Container) -> Paging:
    """A tenant with one agent more than a page and a batch of more items than a page."""
    with stack_container.pool.transaction() as conn:
        admin = create_key(conn, owner_id=PAGING_TENANT, name="paging admin", role="admin")
        for statement in _BIG_BATCH_SQL:
            conn.run(statement, id=BIG_BATCH, owner=PAGING_TENANT)
    names = [f"paged agent {n:02d}" for n in range(PAGED_AGENTS)]
    for name in names:
        _http(stack, "POST", "/v1/agents", admin.secret, {"model": MODEL, "name": name})
    return Paging(admin.secret, names)


def test_each_page_load_asks_for_its_data_alone(
    console: Console, tenant: Tenant, stack: StackInfo
) -> None:
    """Signed in, a page load (the tab reloaded) makes exactly its data's requests: no whoami,
    one keyset-paged request per list, the agent's three and the batch's two sent at once."""
    conversation = f"/gateway/v1/conversations/{tenant.conversation_id}/entries"
    agent, batch = f"/v1/agents/{tenant.agent_id}", f"/gateway/v1/batches/{tenant.batch_id}"
    expected = {
        "#/usage": ("usage", ["/gateway/v1/usage"]),
        "#/keys": ("keys", ["/gateway/v1/keys"]),
        "#/conversations": ("conversations", ["/gateway/v1/conversations"]),
        f"#/conversation/{tenant.conversation_id}": ("conversations", [conversation]),
        "#/agents": ("agents", ["/v1/agents/pages"]),
        f"#/agent/{tenant.agent_id}": ("agents", [agent, f"{agent}/versions", f"{agent}/aliases"]),
        "#/batches": ("batches", ["/gateway/v1/batches"]),
        f"#/batch/{tenant.batch_id}": ("batches", [batch, f"{batch}/items"]),
        "#/audit": ("audit", ["/gateway/v1/audit"]),
        "#/health": ("health", [f"/gateway/v1/health/{f}" for f in ("start", "history", "admin")]),
    }
    console.open()
    console.sign_in(tenant.keys["admin"].secret)
    console.wait("usage")
    assert _api(console.requests) == ["/gateway/v1/whoami", "/gateway/v1/usage"]
    for fragment, (view, paths) in expected.items():
        console.page.goto("about:blank")
        console.requests.clear()
        console.open(fragment)
        console.wait(view)
        assert console.page.query_selector("#view .error") is None, fragment
        assert sorted(_api(console.requests)) == sorted(paths), fragment
    # An operator's tenants page likewise.
    console.page.click("#signout")
    console.sign_in(tenant.keys["operator"].secret)
    console.wait("health")  # the address's view, which the operator may see too
    console.page.goto("about:blank")
    console.requests.clear()
    console.open("#/tenants")
    console.wait("tenants")
    assert _api(console.requests) == ["/gateway/v1/tenants"]


def test_a_refused_kept_key_ends_the_session(console: Console, tenant: Tenant) -> None:
    """A 401 to a page's data request clears the kept key and whoami and shows the sign-in."""
    console.open()
    console.sign_in(tenant.keys["admin"].secret)
    console.wait("usage")
    console.page.evaluate(
        "() => sessionStorage.setItem('gateway-console-key', 'mgw_' + 'x'.repeat(43))"
    )
    console.page.goto("about:blank")
    console.open("#/keys")
    console.page.wait_for_selector("#signin-error:has-text('sign in again')")
    assert console.page.evaluate("() => sessionStorage.length") == 0
    assert console.page.is_hidden("#nav")


def test_agents_page_by_page_token(console: Console, paging: Paging) -> None:
    """The agents list is the keyset route: the first page holds 50, Next asks with the
    page_token the first answer gave and shows the rest; Previous shows the first again."""
    console.open("#/agents")
    console.sign_in(paging.admin)
    console.wait("agents")
    names = "#agents-table tbody tr td:first-child"
    first = console.page.eval_on_selector_all(names, "cells => cells.map(c => c.innerText)")
    asked = [u for u in console.requests if "/v1/agents" in u]
    assert len(asked) == 1
    assert urlsplit(asked[0]).path == "/v1/agents/pages"
    assert set(parse_qs(urlsplit(asked[0]).query)) == {"page_size"}
    assert len(first) == 50
    console.requests.clear()
    console.page.click("button:has-text('Next page')")
    console.page.wait_for_selector("button:has-text('Previous page')")
    second = console.page.eval_on_selector_all(names, "cells => cells.map(c => c.innerText)")
    [token_asked] = [u for u in console.requests if "/v1/agents" in u]
    assert urlsplit(token_asked).path == "/v1/agents/pages"
    token = parse_qs(urlsplit(token_asked).query)
    assert set(token) == {"page_size", "page_token"}
    assert sorted(first + second) == paging.agent_names
    assert console.page.locator("button:has-text('Next page')").count() == 0
    console.page.click("button:has-text('Previous page')")
    console.page.wait_for_selector("button:has-text('Next page')")
    again = console.page.eval_on_selector_all(names, "cells => cells.map(c => c.innerText)")
    assert again == first


def test_a_batch_of_more_items_than_a_page_shows_its_own_counts(
    console: Console, paging: Paging, stack: StackInfo
) -> None:
    """Progress is the batch's counts (130 of 150 finished, 13 failed), not the first page's
    items (100 drawn, all finished)."""
    counts = _http(stack, "GET", f"/gateway/v1/batches/{BIG_BATCH}", paging.admin)["counts"]
    assert (counts["succeeded"], counts["failed"], counts["pending"]) == (117, 13, 20)
    console.open(f"#/batch/{BIG_BATCH}")
    console.sign_in(paging.admin)
    console.wait("batches")
    assert console.page.locator("#batch-items tbody tr").count() == 100
    progress = console.page.locator("#batch-progress")
    assert (progress.get_attribute("value"), progress.get_attribute("max")) == ("130", "150")
    label = console.page.inner_text("label[for=batch-progress]")
    assert label == "Finished 130 of 150 (13 failed)"

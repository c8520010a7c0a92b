// One function per view. Each view's data is one keyset-paged request, except where no one
// answer carries it (an agent: its versions and aliases are Mistral's routes; a batch: its
// counts and its items; health: one per function), then sent at once; DOM is built with text nodes only, never parsed from API strings.

import { call, page, query } from "./api.js";
import { stackedBars } from "./chart.js";

const GW = "/gateway/v1";

// -- small DOM helpers --------------------------------------------------------------------------

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("small", {}, hint) : null);
}

function input(name, attrs = {}) {
  return h("input", { name, ...attrs });
}

function select(name, options, value) {
  return h("select", { name }, options.map(([v, label]) =>
    h("option", { value: v, selected: v === value }, label)));
}

function table(caption, columns, rows, attrs = {}) {
  if (!rows.length) return h("p", { class: "empty" }, `${caption}: nothing to show.`);
  return h("div", { class: "scroll" }, h("table", attrs,
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, get]) => {
      const value = get(row);
      return h("td", {}, value === null || value === undefined ? "" : value);
    }))))));
}

function when(value) {
  return value ? value.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "";
}

function status(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

function alertBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message);
}

function formData(form) {
  const out = {};
  for (const [name, value] of new FormData(form).entries()) out[name] = String(value).trim();
  return out;
}

function list(text) {
  return text ? text.split(",").map((s) => s.trim()).filter(Boolean) : undefined;
}

function int(text) {
  return text === "" || text === undefined ? undefined : Number(text);
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csv(rows, columns) {
  const quote = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => quote(r[c])).join(","))]
    .join("\n") + "\n";
}

// A list with a "next page" button: each page is one keyset-paged request.
async function paged(section, caption, path, params, columns, attrs = {}) {
  const holder = h("div", { class: "paged" });
  section.append(holder);
  const pages = [];
  async function load(cursor) {
    const { data, next } = await page(path, params, cursor);
    pages.push(cursor);
    holder.replaceChildren(table(caption, columns, data, attrs), h("div", { class: "pager" },
      pages.length > 1 ? h("button", { type: "button", onclick: () => {
        pages.pop();
        load(pages.pop());
      } }, "Previous page") : null,
      next ? h("button", { type: "button", onclick: () => load(next) }, "Next page") : null));
    return data;
  }
  return load(null);
}

const may = (me, operation) => me.operations.includes(operation);
const mayPrefix = (me, prefix) => me.operations.some((op) => op.startsWith(prefix));
const isOperator = (me) => me.role === "operator";

// -- usage --------------------------------------------------------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

const MEASURES = [
  ["requests", "Requests"], ["total_tokens", "Tokens (total)"],
  ["prompt_tokens", "Prompt tokens"], ["completion_tokens", "Completion tokens"],
  ["pages", "OCR pages"], ["audio_seconds", "Audio seconds"],
];
const SPLITS = [["", "Nothing"], ["key", "Key"], ["model", "Model"], ["agent", "Agent"]];
const SPLIT_FIELD = { key: "key_id", model: "model", agent: "agent_id" };
const USAGE_COLUMNS = ["day", "hour", "key_id", "model", "agent_id", "requests",
  "failed_requests", "prompt_tokens", "completion_tokens", "total_tokens", "pages",
  "audio_seconds"];

async function renderUsage(section, { me }) {
  const today = new Date();
  const weekAgo = new Date(today.getTime() - 6 * 86400000);
  const form = h("form", { class: "filters", "aria-label": "Usage filters" },
    field("From (UTC day)", input("from", { type: "date", value: isoDay(weekAgo) })),
    field("To (UTC day)", input("to", { type: "date", value: isoDay(today) })),
    field("Per", select("period", [["day", "Day"], ["hour", "Hour"]], "day")),
    field("Split by", select("split", SPLITS, "")),
    field("Measure", select("measure", MEASURES, "requests")),
    isOperator(me) ? field("Tenant", input("owner_id", { placeholder: me.owner_id })) : null,
    h("button", { type: "submit" }, "Show"));
  const out = h("div", { id: "usage-out" });
  section.append(h("h2", {}, "Usage"), form, out);
  async function show() {
    const f = formData(form);
    const groupBy = [f.period, f.split].filter(Boolean).join(",");
    const owner = f.owner_id || me.owner_id;
    let body, limit;
    try {
      [body, limit] = await Promise.all([
        call("GET", `${GW}/usage${query({ from: f.from, to: f.to, group_by: groupBy,
          owner_id: f.owner_id })}`),
        dailyBudget(me, owner),
      ]);
    } catch (error) {
      out.replaceChildren(alertBox(error));
      return;
    }
    out.replaceChildren(...usageFigures(body, f, limit));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  await show();
}

// Every UTC day of the range, so a quiet day shows as an empty slot, not as no day.
function everyDay(first, last) {
  const days = [];
  for (let t = Date.parse(`${first}T00:00:00Z`); t <= Date.parse(`${last}T00:00:00Z`);
    t += 86400000) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

function usageFigures(body, f, limit) {
  const periodField = f.period === "hour" ? "hour" : "day";
  const splitField = SPLIT_FIELD[f.split];
  const label = (row) => (splitField ? String(row[splitField] ?? "(none)") : "all");
  const periods = periodField === "day" ? everyDay(body.from, body.to)
    : [...new Set(body.data.map((r) => r[periodField]))].sort();
  const series = [...new Set(body.data.map(label))].sort();
  const cells = new Map(body.data.map((r) => [`${r[periodField]}|${label(r)}`, r]));
  const measureName = MEASURES.find(([m]) => m === f.measure)[1];
  const chart = stackedBars({
    periods, series, unit: measureName.toLowerCase(),
    value: (p, s) => (cells.get(`${p}|${s}`) || {})[f.measure] || 0,
    title: `${measureName} per ${periodField}${splitField ? `, by ${f.split}` : ""},`
      + ` ${body.from} to ${body.to} (UTC)`,
  });
  const t = body.totals;
  const totals = h("dl", { class: "totals" },
    h("dt", {}, "Requests"), h("dd", { id: "total-requests" }, t.requests.toLocaleString("en")),
    h("dt", {}, "Failed"), h("dd", {}, t.failed_requests.toLocaleString("en")),
    h("dt", {}, "Tokens"), h("dd", { id: "total-tokens" }, t.total_tokens.toLocaleString("en")),
    h("dt", {}, "OCR pages"), h("dd", { id: "total-pages" }, t.pages.toLocaleString("en")),
    h("dt", {}, "Audio seconds"),
    h("dd", { id: "total-audio-seconds" }, t.audio_seconds.toLocaleString("en")));
  const columns = USAGE_COLUMNS.filter((c) => c.endsWith("s") || body.data.some((r) => c in r));
  const exportCsv = h("button", { type: "button", onclick: () =>
    download(`usage-${body.from}-${body.to}.csv`, csv(body.data, columns), "text/csv") },
  "Download CSV");
  return [totals, budget(limit, body), chart,
    table("Usage figures", columns.map((c) => [c.replace(/_/g, " "), (r) => r[c]]), body.data,
      { id: "usage-table" }),
    exportCsv];
}

// The daily token budget to show. For the caller's own tenant it is whoami's, held since
// sign-in (no request): the budget in force for this key, which is its tenant's (or the
// deployment's default) unless the key sets a lower one of its own. Another tenant's
// (an operator's choice of tenant) is read from that tenant. null: none set.
async function dailyBudget(me, owner) {
  if (owner === me.owner_id) {
    return { perDay: me.limits.token_budget_per_day,
      whose: `the budget in force for this key in tenant ${owner}` };
  }
  const tenant = await call("GET", `${GW}/tenants/${encodeURIComponent(owner)}`);
  if (tenant.token_budget_per_day !== null) {
    return { perDay: tenant.token_budget_per_day, whose: `tenant ${owner}'s budget` };
  }
  return { perDay: null, whose: "the deployment's default" };
}

// Today's tokens against that budget.
function budget(limit, body) {
  if (!limit.perDay) {
    return h("p", { class: "budget", id: "budget" }, `No daily token budget is set`
      + (limit.perDay === null ? ` (${limit.whose} applies).` : "."));
  }
  const today = new Date().toISOString().slice(0, 10);
  const used = body.data.filter((r) => (r.day || (r.hour || "").slice(0, 10)) === today)
    .reduce((sum, r) => sum + r.total_tokens, 0);
  return h("p", { class: "budget", id: "budget" },
    h("label", { for: "budget-meter" }, `Today's tokens: ${used.toLocaleString("en")} of`
      + ` ${limit.perDay.toLocaleString("en")} a day (${limit.whose})`),
    h("meter", { id: "budget-meter", min: 0, max: limit.perDay, value: Math.min(used, limit.perDay),
      high: limit.perDay * 0.8 }));
}

// -- keys ---------------------------------------------------------------------------------------

const ROLES = ["admin", "user", "read_only"];
const LIMITS = [
  ["rate_limit_requests", "Requests per window"], ["rate_limit_window", "Window (s)"],
  ["token_budget_per_minute", "Tokens per minute"], ["token_budget_per_day", "Tokens per day"],
];

function limitFields(prefix = "") {
  return LIMITS.map(([name, label]) =>
    field(label, input(name, { type: "number", min: 0, id: `${prefix}${name}` }),
      "empty: the default"));
}

function keyBody(f, create) {
  const body = {};
  if (f.name) body.name = f.name;
  if (create) body.role = f.role;
  if (create && f.owner_id) body.owner_id = f.owner_id;
  for (const [name] of LIMITS) if (f[name] !== "" && f[name] !== undefined) body[name] = int(f[name]);
  const models = list(f.allowed_models), agents = list(f.allowed_agents);
  if (models) body.allowed_models = models;
  if (agents) body.allowed_agents = agents;
  return body;
}

function secretPanel(title, secret) {
  const out = h("output", { id: "new-secret", class: "secret" }, secret);
  const copy = h("button", { type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copy.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(out);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copy.textContent = "Selected: press Ctrl+C";
    }
  } }, "Copy");
  return h("div", { class: "notice", role: "status" }, h("p", {}, title), out, copy,
    h("p", {}, "This secret is shown once: store it now."));
}

async function renderKeys(section, { me }) {
  const roles = isOperator(me) ? ["operator", ...ROLES] : ROLES;
  const notice = h("div", { id: "key-notice" });
  const create = h("form", { class: "card", "aria-labelledby": "create-key-title" },
    h("h3", { id: "create-key-title" }, "Create a key"),
    field("Name", input("name", { required: true, id: "key-name" })),
    field("Role", select("role", roles.map((r) => [r, r]), "user")),
    isOperator(me) ? field("Tenant", input("owner_id", { placeholder: me.owner_id })) : null,
    ...limitFields("new-"),
    field("Allowed models", input("allowed_models"), "comma-separated; empty: any"),
    field("Allowed agents", input("allowed_agents"), "comma-separated; empty: any"),
    h("button", { type: "submit" }, "Create key"));
  const listing = h("div", { id: "keys-list" });
  const filter = {};
  const tenantFilter = isOperator(me) ? h("form", { class: "filters", "aria-label": "Keys of" },
    field("Keys of tenant", input("owner_id", { placeholder: me.owner_id })),
    h("button", { type: "submit" }, "Show keys")) : null;
  section.append(...[h("h2", {}, "Keys"), notice, tenantFilter, h("details", {},
    h("summary", {}, "Create a key"), create), listing].filter(Boolean));
  if (tenantFilter) {
    tenantFilter.addEventListener("submit", async (event) => {
      event.preventDefault();
      filter.owner_id = formData(tenantFilter).owner_id;
      try {
        await reload();
      } catch (error) {
        listing.replaceChildren(alertBox(error));
      }
    });
  }
  async function reload() {
    listing.replaceChildren();
    await paged(listing, "Keys of the tenant", `${GW}/keys`, { limit: 50, ...filter },
      keyColumns(notice, reload), { id: "keys-table" });
  }
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await call("POST", `${GW}/keys`, keyBody(formData(create), true));
      notice.replaceChildren(secretPanel(`Key ${made.key.prefix}… (${made.key.role}) created.`,
        made.secret));
      create.reset();
      await reload();
    } catch (error) {
      notice.replaceChildren(alertBox(error));
    }
  });
  await reload();
}

function keyColumns(notice, reload) {
  const act = async (what, fn) => {
    try {
      await fn();
      await reload();
    } catch (error) {
      notice.replaceChildren(alertBox(error));
    }
    return what;
  };
  return [
    ["Prefix", (k) => h("code", {}, k.prefix)],
    ["Name", (k) => k.name],
    ["Role", (k) => k.role],
    ["Tenant", (k) => k.owner_id],
    ["Limits", (k) => LIMITS.map(([n, l]) => (k[n] === null || k[n] === undefined ? null
      : `${l}: ${k[n]}`)).filter(Boolean).join("; ") || "defaults"],
    ["Allow-lists", (k) => [k.allowed_models && k.allowed_models.length
      ? `models: ${k.allowed_models.join(", ")}` : null, k.allowed_agents
      && k.allowed_agents.length ? `agents: ${k.allowed_agents.join(", ")}` : null]
      .filter(Boolean).join("; ") || "any"],
    ["Created", (k) => when(k.created_at)],
    ["Last used", (k) => when(k.last_used_at)],
    ["Status", (k) => (k.revoked_at ? status("revoked") : status("active"))],
    ["Actions", (k) => (k.revoked_at ? "" : h("div", { class: "actions" },
      h("button", { type: "button", "aria-label": `Rotate key ${k.prefix}`, onclick: () =>
        rotateKey(k, notice, reload) }, "Rotate"),
      h("button", { type: "button", "aria-label": `Edit limits of key ${k.prefix}`, onclick: () =>
        editKey(k, notice, reload) }, "Edit"),
      h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.prefix}`,
        onclick: () => act("revoke", async () => {
          if (!confirm(`Revoke key ${k.prefix}…? It stops working within seconds.`)) return;
          await call("POST", `${GW}/keys/${encodeURIComponent(k.id)}/revoke`);
          notice.replaceChildren(h("p", { role: "status" }, `Key ${k.prefix}… revoked.`));
        }) }, "Revoke")))],
  ];
}

function rotateKey(k, notice, reload) {
  const form = h("form", { class: "card", "aria-label": `Rotate key ${k.prefix}` },
    h("h3", {}, `Rotate key ${k.prefix}…`),
    field("Grace (seconds the old secret keeps working)", input("grace_s", { type: "number",
      min: 0, max: 604800, value: 3600, id: "rotate-grace" }), "0: it stops at once"),
    h("button", { type: "submit" }, "Rotate now"),
    h("button", { type: "button", onclick: () => form.remove() }, "Cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const grace = Number(formData(form).grace_s || 0);
    try {
      const made = await call("POST", `${GW}/keys/${encodeURIComponent(k.id)}/rotate`,
        { grace_s: grace });
      notice.replaceChildren(secretPanel(`Key ${made.key.prefix}… rotated; the old secret works`
        + ` until ${when(made.key.previous_secret_expires_at) || "now"}.`, made.secret));
      await reload();
    } catch (error) {
      notice.replaceChildren(alertBox(error));
    }
  });
  notice.replaceChildren(form);
  form.elements.grace_s.focus();
}

function editKey(k, notice, reload) {
  const form = h("form", { class: "card", "aria-label": `Edit key ${k.prefix}` },
    h("h3", {}, `Edit key ${k.prefix}…`),
    field("Name", input("name", { value: k.name })),
    ...limitFields("edit-"),
    field("Allowed models", input("allowed_models", { value: (k.allowed_models || []).join(", ") })),
    field("Allowed agents", input("allowed_agents", { value: (k.allowed_agents || []).join(", ") })),
    h("button", { type: "submit" }, "Save"),
    h("button", { type: "button", onclick: () => form.remove() }, "Cancel"));
  for (const [name] of LIMITS) {
    if (k[name] !== null && k[name] !== undefined) form.elements[name].value = k[name];
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("PATCH", `${GW}/keys/${encodeURIComponent(k.id)}`, keyBody(formData(form), false));
      notice.replaceChildren(h("p", { role: "status" }, `Key ${k.prefix}… saved.`));
      await reload();
    } catch (error) {
      notice.replaceChildren(alertBox(error));
    }
  });
  notice.replaceChildren(form);
  form.elements.name.focus();
}

// -- conversations ------------------------------------------------------------------------------

async function renderConversations(section) {
  const form = h("form", { class: "filters", role: "search", "aria-label": "Find conversations" },
    field("Conversation id", input("id", { placeholder: "conv_…" })),
    field("Agent id", input("agent_id")),
    field("Model", input("model")),
    field("Status", select("status", [["", "Any"], ["active", "Active"],
      ["archived", "Archived"]], "")),
    field("From (UTC day)", input("after", { type: "date" })),
    field("To (UTC day)", input("before", { type: "date" })),
    field("Metadata (JSON)", input("metadata", { placeholder: '{"team": "a"}' })),
    h("button", { type: "submit" }, "Search"));
  const results = h("div", { id: "conversations-list" });
  section.append(h("h2", {}, "Conversations"), form, results);
  async function search() {
    const f = formData(form);
    if (f.id) {
      location.hash = `#/conversation/${encodeURIComponent(f.id)}`;
      return;
    }
    const next = (day) => isoDay(new Date(new Date(`${day}T00:00:00Z`).getTime() + 86400000));
    results.replaceChildren();
    try {
      await paged(results, "Conversations, newest first", `${GW}/conversations`, {
        limit: 50, agent_id: f.agent_id, model: f.model, status: f.status,
        metadata: f.metadata, created_after: f.after ? `${f.after}T00:00:00Z` : "",
        created_before: f.before ? `${next(f.before)}T00:00:00Z` : "",
      }, [
        ["Id", (c) => h("a", { href: `#/conversation/${encodeURIComponent(c.id)}`
          + (c.status === "archived" ? "?archived" : "") }, c.id)],
        ["Name", (c) => c.name],
        ["Agent or model", (c) => c.agent_id || c.model],
        ["Status", (c) => status(c.status)],
        ["Created", (c) => when(c.created_at)],
        ["Updated", (c) => when(c.updated_at)],
      ], { id: "conversations-table" });
    } catch (error) {
      results.replaceChildren(alertBox(error));
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  await search();
}

function textOf(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((c) => c.text ?? (c.type ? `[${c.type}]` : JSON.stringify(c))).join("");
  }
  return JSON.stringify(content);
}

function entryView(item) {
  const e = item.entry || {};
  const type = item.type || e.type;
  let who, body;
  if (type === "message.input" || type === "message.output") {
    who = e.role || (type === "message.input" ? "user" : "assistant");
    body = h("div", { class: "text" }, textOf(e.content));
  } else if (type === "function.call") {
    who = "tool call";
    body = h("div", {}, h("code", { class: "tool-name" }, e.name || ""),
      h("pre", {}, typeof e.arguments === "string" ? e.arguments : JSON.stringify(e.arguments, null, 2)));
  } else if (type === "function.result") {
    who = "tool result";
    body = h("pre", {}, typeof e.result === "string" ? e.result : JSON.stringify(e.result, null, 2));
  } else if (type === "agent.handoff") {
    who = "handoff";
    body = h("p", {}, `${e.previous_agent_name || e.previous_agent_id || "?"} → `
      + `${e.next_agent_name || e.next_agent_id || "?"}`);
  } else if (type === "tool.execution") {
    who = "tool";
    body = h("div", {}, h("code", { class: "tool-name" }, e.name || ""),
      h("pre", {}, JSON.stringify(e.arguments ?? e.info ?? {}, null, 2)));
  } else {
    who = type;
    body = h("pre", {}, JSON.stringify(e, null, 2));
  }
  const tokens = (item.prompt_tokens || item.completion_tokens)
    ? ` · ${item.prompt_tokens ?? 0} in, ${item.completion_tokens ?? 0} out` : "";
  return h("li", { class: `entry ${type.replace(/\./g, "-")}`, dataset: { type } },
    h("p", { class: "who" }, h("strong", {}, who), ` · ${type}${e.agent_id ? ` · ${e.agent_id}` : ""}`
      + `${e.model ? ` · ${e.model}` : ""} · ${when(item.created_at)}${tokens}`,
    item.status && item.status !== "complete" ? status(item.status, "warn") : null), body);
}

async function renderConversation(section, { arg }) {
  const [id, flag] = arg.split("?");
  section.append(h("h2", {}, `Conversation ${id}`),
    h("p", {}, h("a", { href: "#/conversations" }, "Back to conversations")));
  const { data, next } = await page(`${GW}/conversations/${encodeURIComponent(id)}/entries`,
    { limit: 200 });
  if (flag === "archived") section.append(h("p", {}, status("archived")));
  const entries = h("ol", { class: "entries", "aria-label": "Entries, oldest first" });
  const add = (rows) => entries.append(...rows.map(entryView));
  add(data);
  section.append(entries);
  let cursor = next;
  if (cursor) {
    const more = h("button", { type: "button", onclick: async () => {
      const got = await page(`${GW}/conversations/${encodeURIComponent(id)}/entries`,
        { limit: 200 }, cursor);
      add(got.data);
      cursor = got.next;
      if (!cursor) more.remove();
    } }, "Later entries");
    section.append(more);
  }
}

// -- agents -------------------------------------------------------------------------------------

async function renderAgents(section, { arg, detail }) {
  if (detail) return renderAgent(section, arg);
  section.append(h("h2", {}, "Agents"));
  // Keyset pages of Mistral's own paging route (page_token, next_page_token).
  await paged(section, "Agents of the tenant", "/v1/agents/pages", { page_size: 50 }, [
    ["Name", (a) => h("a", { href: `#/agent/${encodeURIComponent(a.id)}` }, a.name)],
    ["Id", (a) => h("code", {}, a.id)],
    ["Model", (a) => a.model],
    ["Version", (a) => a.version],
    ["Updated", (a) => when(a.updated_at)],
  ], { id: "agents-table" });
  return undefined;
}

// The agent, its versions and its aliases: three requests sent at once, since the last two
// are Mistral's own routes (relayed) and no one answer carries all three.
async function renderAgent(section, id) {
  const path = `/v1/agents/${encodeURIComponent(id)}`;
  const [agent, versions, aliases] = await Promise.all([
    call("GET", path), call("GET", `${path}/versions`), call("GET", `${path}/aliases`),
  ]);
  section.append(h("h2", {}, `Agent ${agent.name}`),
    h("p", {}, h("a", { href: "#/agents" }, "Back to agents")),
    h("dl", { class: "facts" }, h("dt", {}, "Id"), h("dd", {}, agent.id),
      h("dt", {}, "Model"), h("dd", {}, agent.model), h("dt", {}, "Version"),
      h("dd", {}, agent.version), h("dt", {}, "Instructions"), h("dd", {}, agent.instructions || "")),
    table("Versions", [["Version", (v) => v.version], ["Model", (v) => v.model],
      ["Updated", (v) => when(v.updated_at)]], Array.isArray(versions) ? versions : versions.data || []),
    table("Aliases", [["Alias", (a) => a.alias], ["Version", (a) => a.version]],
      Array.isArray(aliases) ? aliases : aliases.data || []));
}

// -- batches ------------------------------------------------------------------------------------

async function renderBatches(section, { arg, detail }) {
  if (detail) return renderBatch(section, arg);
  section.append(h("h2", {}, "Batches"));
  await paged(section, "Batches, newest first", `${GW}/batches`, { limit: 50 }, [
    ["Id", (b) => h("a", { href: `#/batch/${encodeURIComponent(b.id)}` }, b.id)],
    ["Status", (b) => status(b.status)],
    ["Items", (b) => b.item_count],
    ["Published", (b) => when(b.published_at)],
    ["Updated", (b) => when(b.updated_at)],
    ["Error", (b) => b.error && (b.error.message || JSON.stringify(b.error))],
  ], { id: "batches-table" });
  return undefined;
}

// The batch (its progress: the batch's own counts of items per status) and its items,
// keyset-paged: two requests sent at once, as no one answer carries both.
async function renderBatch(section, id) {
  const path = `${GW}/batches/${encodeURIComponent(id)}`;
  const head = h("div", {});
  section.append(head);
  const [batch] = await Promise.all([call("GET", path),
    paged(section, "Items", `${path}/items`, { limit: 100 }, [
      ["#", (i) => i.index], ["Custom id", (i) => i.custom_id], ["Status", (i) => status(i.status)],
      ["Conversation", (i) => (i.conversation_id ? h("a", { href:
        `#/conversation/${encodeURIComponent(i.conversation_id)}` }, i.conversation_id) : "")],
      ["Attempts", (i) => i.attempts],
      ["Error", (i) => i.error && (i.error.message || JSON.stringify(i.error))],
    ], { id: "batch-items" })]);
  const counts = batch.counts || {};
  const done = (counts.succeeded || 0) + (counts.failed || 0);
  head.append(h("h2", {}, `Batch ${batch.id}`),
    h("p", {}, h("a", { href: "#/batches" }, "Back to batches")),
    h("p", {}, status(batch.status), ` ${batch.item_count} items`),
    h("p", {}, h("label", { for: "batch-progress" }, `Finished ${done} of ${batch.item_count}`
      + ` (${counts.failed || 0} failed)`),
    h("progress", { id: "batch-progress", max: batch.item_count || 1, value: done })));
}

// -- audit, tenants, health ----------------------------------------------------------------------

async function renderAudit(section, { me }) {
  const form = h("form", { class: "filters", "aria-label": "Audit filters" },
    field("Action", input("action", { placeholder: "key.create" })),
    field("Actor key id", input("actor_key_id")),
    isOperator(me) ? field("Tenant", input("tenant_id")) : null,
    field("Since", input("since", { type: "date" })),
    h("button", { type: "submit" }, "Filter"));
  const out = h("div", {});
  section.append(h("h2", {}, "Audit log"), form, out);
  async function show() {
    const f = formData(form);
    out.replaceChildren();
    try {
      await paged(out, "Audit entries, newest first", `${GW}/audit`, {
        limit: 50, action: f.action, actor_key_id: f.actor_key_id, tenant_id: f.tenant_id,
        since: f.since ? `${f.since}T00:00:00Z` : "",
      }, [
        ["When", (a) => when(a.created_at)], ["Tenant", (a) => a.tenant_id],
        ["Actor", (a) => (a.actor_prefix ? `${a.actor_prefix}… (${a.actor_role})`
          : "no key (command line)")],
        ["Action", (a) => h("code", {}, a.action)], ["Target", (a) => a.target_id],
        ["Outcome", (a) => a.outcome], ["Changes", (a) => JSON.stringify(a.changes || {})],
      ], { id: "audit-table" });
    } catch (error) {
      out.replaceChildren(alertBox(error));
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  await show();
}

async function renderTenants(section) {
  const notice = h("div", {});
  const create = h("form", { class: "card", "aria-labelledby": "create-tenant-title" },
    h("h3", { id: "create-tenant-title" }, "Create a tenant"),
    field("Id", input("id", { required: true })), field("Name", input("name", { required: true })),
    ...limitFields("tenant-"), h("button", { type: "submit" }, "Create tenant"));
  const listing = h("div", {});
  section.append(h("h2", {}, "Tenants"), notice, h("details", {}, h("summary", {}, "Create a tenant"),
    create), listing);
  async function reload() {
    listing.replaceChildren();
    await paged(listing, "Tenants", `${GW}/tenants`, { limit: 50 }, [
      ["Id", (t) => h("code", {}, t.id)], ["Name", (t) => t.name],
      ["Status", (t) => status(t.disabled ? "disabled" : "active")],
      ["Limits", (t) => LIMITS.map(([n, l]) => (t[n] === null || t[n] === undefined ? null
        : `${l}: ${t[n]}`)).filter(Boolean).join("; ") || "defaults"],
      ["Created", (t) => when(t.created_at)],
      ["Actions", (t) => h("button", { type: "button", onclick: async () => {
        try {
          await call("PATCH", `${GW}/tenants/${encodeURIComponent(t.id)}`, { disabled: !t.disabled });
          await reload();
        } catch (error) {
          notice.replaceChildren(alertBox(error));
        }
      } }, t.disabled ? "Enable" : "Disable")],
    ], { id: "tenants-table" });
  }
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = formData(create);
    const body = { id: f.id, name: f.name };
    for (const [name] of LIMITS) if (f[name] !== "") body[name] = int(f[name]);
    try {
      await call("POST", `${GW}/tenants`, body);
      notice.replaceChildren(h("p", { role: "status" }, `Tenant ${f.id} created.`));
      create.reset();
      await reload();
    } catch (error) {
      notice.replaceChildren(alertBox(error));
    }
  });
  await reload();
}

const PUBLIC_FUNCTIONS = ["start", "history", "admin"];

async function renderHealth(section) {
  section.append(h("h2", {}, "Health"));
  const answers = await Promise.all(PUBLIC_FUNCTIONS.map(async (fn) => {
    const answer = await fetch(`${GW}/health/${fn}`, { cache: "no-store", credentials: "omit" });
    return answer.json();
  }));
  const check = (c) => (c.ok ? `reachable (${c.latency_ms} ms)` : `unreachable (${c.error})`);
  section.append(table("Each function, as one of its instances answers", [
    ["Function", (a) => a.function], ["Status", (a) => status(a.status)],
    ["Database", (a) => check(a.database)], ["Redis", (a) => check(a.redis)],
    ["Circuit", (a) => status(a.circuit || "unknown")],
    ["Rate-limit mode when Redis fails", (a) => a.rate_limit_failure_mode],
  ], answers, { id: "health-table" }),
  h("p", {}, "The batch function is reached by Pub/Sub only: its health is on its own URL."));
}

// -- the views, in menu order; `needs` decides from the caller's operations --------------------

export const VIEWS = [
  { id: "usage", title: "Usage", needs: (me) => may(me, "gateway.usage"), render: renderUsage },
  { id: "keys", title: "Keys", needs: (me) => may(me, "gateway.keys.list"), render: renderKeys },
  { id: "conversations", title: "Conversations", detail: "conversation",
    needs: (me) => may(me, "gateway.conversations.list"),
    render: (s, ctx) => (ctx.detail ? renderConversation(s, ctx) : renderConversations(s)) },
  { id: "agents", title: "Agents", detail: "agent", needs: (me) => may(me, "agents.list"),
    render: renderAgents },
  { id: "batches", title: "Batches", detail: "batch", needs: (me) => may(me, "gateway.batches.list"),
    render: renderBatches },
  { id: "audit", title: "Audit log", needs: (me) => mayPrefix(me, "gateway.audit"),
    render: renderAudit },
  { id: "tenants", title: "Tenants", needs: (me) => may(me, "gateway.tenants.create"),
    render: renderTenants },
  { id: "health", title: "Health", needs: (me) => isOperator(me) || may(me, "gateway.keys.create"),
    render: renderHealth },
];

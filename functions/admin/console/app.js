// The console: sign-in, the views a role may see, and hash routing between them.
// What a role may see follows GET /gateway/v1/whoami's `operations` (the server's one
// permission table), never a copy of it here. whoami is asked once, at sign-in, and kept
// for the browser session beside the key: a page load then asks only for its data.

import { ApiError, call, forget, keep, key, session } from "./api.js";
import { VIEWS } from "./views.js";

const $ = (selector) => document.querySelector(selector);
let me = null;

function visible(view) {
  return view.needs(me);
}

function showSignIn(message = "") {
  me = null;
  $("#signin").hidden = false;
  $("#view").hidden = true;
  $("#nav").hidden = true;
  $("#signout").hidden = true;
  $("#who").textContent = "";
  $("#signin-error").textContent = message;
  $("#key").focus();
}

function renderNav() {
  const list = $("#nav ul");
  list.replaceChildren();
  for (const view of VIEWS.filter(visible)) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#/${view.id}`;
    link.textContent = view.title;
    link.dataset.view = view.id;
    item.append(link);
    list.append(item);
  }
  $("#nav").hidden = false;
}

async function route() {
  if (!me) return;
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const allowed = VIEWS.filter(visible);
  const view = allowed.find((v) => v.id === name || (v.detail && v.detail === name))
    || allowed[0];
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const section = $("#view");
  section.hidden = false;
  section.replaceChildren();
  section.setAttribute("aria-busy", "true");
  const arg = rest.map(decodeURIComponent).join("/");
  try {
    await view.render(section, { me, arg, detail: name === view.detail });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      forget();
      showSignIn("The key was refused: sign in again.");
      return;
    }
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = `Could not load: ${error.message}`;
    section.append(p);
  } finally {
    section.setAttribute("aria-busy", "false");
    section.dataset.view = view.id;
  }
  const heading = section.querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

// Sign in with a typed key: its whoami, asked once and kept for the session.
async function signIn(secret) {
  let who;
  try {
    who = await call("GET", "/gateway/v1/whoami", undefined, secret);
  } catch (error) {
    const refused = error instanceof ApiError && (error.status === 401 || error.status === 403);
    showSignIn(refused ? "This key is not valid for this gateway." : `Sign-in failed: ${error.message}`);
    return false;
  }
  keep(secret, who);
  return enter(who);
}

// Show the console for a signed-in caller (`who`: its whoami) and route to the page asked.
async function enter(who) {
  me = who;
  $("#signin").hidden = true;
  $("#signin").reset();
  $("#signout").hidden = false;
  $("#who").textContent = `${me.name} (${me.prefix}…), role ${me.role}, tenant ${me.owner_id}`;
  renderNav();
  await route();
  return true;
}

function start() {
  $("#signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const secret = $("#key").value.trim();
    if (!secret) {
      $("#signin-error").textContent = "Type a gateway key.";
      return;
    }
    signIn(secret);
  });
  $("#signout").addEventListener("click", () => {
    forget();
    showSignIn();
  });
  // Any 401 to the kept key (api.js has already forgotten the session).
  window.addEventListener("gateway-signed-out", () => {
    if (me) showSignIn("The key was refused: sign in again.");
  });
  window.addEventListener("hashchange", route);
  const kept = session();
  if (kept) enter(kept.me);
  else if (key()) signIn(key()); // a key kept without its whoami: sign in with it once
  else showSignIn();
}

start();

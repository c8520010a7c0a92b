// The gateway's JSON API, called with the key typed at sign-in. The key and the caller's
// whoami (asked once, at sign-in) are kept for the browser session only (sessionStorage),
// so a page load asks only for its data; both go on sign-out and on any 401.

const STORE = "gateway-console-key";
const WHOAMI = "gateway-console-whoami";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function key() {
  return sessionStorage.getItem(STORE);
}

// The signed-in session: the key and its whoami, or null (signed out, or never asked).
export function session() {
  const secret = key();
  let me = null;
  try {
    me = JSON.parse(sessionStorage.getItem(WHOAMI) || "null");
  } catch {
    me = null;
  }
  return secret && me ? { secret, me } : null;
}

export function keep(secret, me) {
  sessionStorage.setItem(STORE, secret);
  sessionStorage.setItem(WHOAMI, JSON.stringify(me));
}

export function forget() {
  sessionStorage.removeItem(STORE);
  sessionStorage.removeItem(WHOAMI);
}

function messageOf(body) {
  if (!body) return null;
  if (typeof body.message === "string") return body.message;
  if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  return typeof body.detail === "string" ? body.detail : null;
}

export async function call(method, path, body, secret = key()) {
  const headers = { Authorization: `Bearer ${secret}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await answer.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  if (!answer.ok) {
    // The kept key refused: the session ends (the app shows the sign-in again).
    if (answer.status === 401 && secret === key()) {
      forget();
      window.dispatchEvent(new Event("gateway-signed-out"));
    }
    const error = new ApiError(answer.status, parsed);
    error.message = messageOf(parsed) || `HTTP ${answer.status}`;
    throw error;
  }
  return parsed;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// One keyset page of a list: {data, next} where next is the parameter asking for the
// following page (the gateway's lists: cursor from next_cursor; Mistral's agents pages:
// page_token from next_page_token).
export async function page(path, params, cursor) {
  const body = await call("GET", path + query({ ...params, ...(cursor || {}) }));
  let next = null;
  if (body.next_cursor) next = { cursor: body.next_cursor };
  else if (body.next_page_token) next = { page_token: body.next_page_token };
  return { data: body.data, next };
}

// The gateway's JSON API, called with the key typed at sign-in (sessionStorage only).

const STORE = "gateway-console-key";

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

export function setKey(value) {
  if (value) sessionStorage.setItem(STORE, value);
  else sessionStorage.removeItem(STORE);
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

// One keyset page of a gateway list: {data, next} where next is the cursor parameter for
// the following page (the gateway's one paging vocabulary: limit, cursor, next_cursor).
export async function page(path, params, cursor) {
  const body = await call("GET", path + query({ ...params, ...(cursor || {}) }));
  let next = null;
  if (body.next_cursor) next = { cursor: body.next_cursor };
  else if (body.next_page_token) next = { page_token: body.next_page_token };
  return { data: body.data, next };
}

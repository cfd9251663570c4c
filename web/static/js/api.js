// The JSON API, called with the API key the user gave on /login.
//
// The key lives in sessionStorage: it survives reloads in this tab, not the browser.
// A 401 forgets it and sends the user back to /login; a route that does not exist
// (404/405/501) is "not available" for optional() so pages degrade instead of failing.

const STORAGE_KEY = "canvasflow.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    const p = problem && typeof problem === "object" ? problem : {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.status = status;
    this.problem = p;
    this.problems = Array.isArray(p.errors) ? p.errors : [];
  }
}

export function getKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function setKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}

export function loginUrl(next = location.pathname + location.search) {
  return `/login?next=${encodeURIComponent(next)}`;
}

/** Send the user to /login unless a key is stored; true when one is. */
export function requireKey() {
  if (getKey()) return true;
  location.replace(loginUrl());
  return false;
}

function buildUrl(path, query) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

/** Call the API; resolves to the parsed JSON (null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, query, key = getKey() } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(buildUrl(path, query), init);
  } catch {
    throw new ApiError(0, { title: "Network error", detail: "The server could not be reached." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { title: response.statusText, detail: text.slice(0, 300) };
    }
  }
  if (response.status === 401 && key === getKey() && path !== "/api/health") {
    forgetKey();
    location.assign(loginUrl());
  }
  if (!response.ok) throw new ApiError(response.status, data || { title: response.statusText });
  return data;
}

/** Like api(), but a route that is not there (yet) resolves to null instead of failing. */
export async function optional(path, options) {
  try {
    return await api(path, options);
  } catch (err) {
    if (err instanceof ApiError && [404, 405, 501].includes(err.status)) return null;
    throw err;
  }
}

/** Every item of a paginated list, following next_cursor up to `max` items. */
export async function listAll(path, { query = {}, max = 500 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, limit: 100, cursor } });
    items.push(...(page.items || []));
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

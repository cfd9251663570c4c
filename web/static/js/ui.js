// Small DOM helpers shared by every page. Text always goes in as textContent:
// nothing the API returns is ever parsed as HTML.

import { ApiError, forgetKey, getKey, requireKey } from "./api.js";

export const EXECUTION_STATUSES = ["pending", "running", "succeeded", "failed", "cancelled"];
export const STEP_STATUSES = ["pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"];
export const LIVE_STATUSES = new Set(["pending", "running", "waiting"]);

/** Create an element: h("a", {href, class: "x", onclick}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes and children. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      el.textContent = value;
    } else if (name === "value" && "value" in el) {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function $$(selector, root = document) {
  return [...root.querySelectorAll(selector)];
}

export function statusBadge(status) {
  const value = status || "unknown";
  return h("span", { class: `badge status-${value}`, "data-status": value }, value);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function idLink(href, id) {
  return h("a", { href, class: "id", title: id }, h("code", {}, shortId(id)));
}

/** "14:03:07" today, "Mar 3, 14:03" otherwise; the ISO string in the title. */
export function fmtTime(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", {}, String(iso));
  const today = new Date().toDateString() === d.toDateString();
  const text = today
    ? d.toLocaleTimeString([], { hour12: false })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
  return h("time", { datetime: iso, title: d.toISOString() }, text);
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  const sec = Math.round((ms % 60_000) / 1000);
  if (m < 60) return `${m} m ${sec} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function durationBetween(start, end) {
  if (!start) return null;
  const t0 = Date.parse(start);
  const t1 = end ? Date.parse(end) : Date.now();
  return Math.max(0, t1 - t0);
}

export function fmtAgo(iso) {
  if (!iso) return "never";
  const ms = Date.now() - Date.parse(iso);
  if (ms < 0) return `in ${fmtDuration(-ms)}`;
  if (ms < 5_000) return "just now";
  return `${fmtDuration(ms)} ago`;
}

export function prettyJson(value) {
  if (value === undefined) return "";
  return JSON.stringify(value, null, 2);
}

export function jsonBlock(value, { empty = "—" } = {}) {
  const text = value === null || value === undefined ? empty : prettyJson(value);
  return h("pre", { class: "json" }, text);
}

/** A table: columns are [{label, cell: row => node|string, class?}]. */
export function table(columns, rows, { empty = "Nothing here yet.", rowAttrs } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    { class: "table" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h("td", { class: c.class }, c.cell(row)))),
      ),
    ),
  );
}

export function notAvailable(what = "This") {
  return h("p", { class: "empty not-available" }, `${what} is not available on this server.`);
}

/** A readable block for an error thrown by api(). */
export function errorBox(err) {
  const problem = err instanceof ApiError ? err.problem : {};
  const title = problem.title || "Something went wrong";
  const detail = problem.detail || (err && err.message) || "";
  return h(
    "div",
    { class: "alert error", role: "alert" },
    h("strong", {}, err instanceof ApiError && err.status ? `${err.status} ${title}` : title),
    detail ? h("p", {}, detail) : null,
    problemList(err instanceof ApiError ? err.problems : []),
  );
}

export function problemList(problems) {
  if (!problems || !problems.length) return null;
  return h("ul", { class: "problem-list" }, problems.map((p) => h("li", {}, p.pointer ? h("code", {}, p.pointer) : null, " ", p.message)));
}

export function toast(message, kind = "info") {
  const box = $("[data-toasts]");
  if (!box) return;
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * Call `fn` now and then every `ms` while `keepGoing()` says so; slower in hidden tabs.
 * Returns {stop, kick}: kick() runs it again at once (e.g. after an action).
 */
export function poll(fn, ms, keepGoing = () => true) {
  let timer = null;
  let stopped = false;
  let running = false;
  async function tick() {
    clearTimeout(timer);
    if (stopped || running) return;
    running = true;
    try {
      await fn();
    } catch (err) {
      console.error(err);
    } finally {
      running = false;
    }
    if (!stopped && keepGoing()) timer = setTimeout(tick, document.hidden ? Math.max(ms, 5000) : ms);
  }
  tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    kick() {
      stopped = false;
      tick();
    },
  };
}

/** Read a JSON textarea; "" is `fallback`. Throws SyntaxError with a readable message. */
export function parseJsonField(text, fallback = undefined) {
  if (!text.trim()) return fallback;
  return JSON.parse(text);
}

/** Page start-up: demand a key, wire "Log out". Returns false when redirecting to /login. */
export function initShell({ needsKey = true } = {}) {
  const logout = $("[data-logout]");
  const key = getKey();
  if (logout && key) {
    logout.hidden = false;
    logout.addEventListener("click", (event) => {
      event.preventDefault();
      forgetKey();
      location.assign("/login");
    });
    const hint = $("[data-key-hint]");
    if (hint) hint.textContent = `key ${key.slice(0, 11)}…`;
  }
  return needsKey ? requireKey() : true;
}

/** Keep form fields and the URL's query string in step (filters survive reloads). */
export function syncFormWithQuery(form) {
  const params = new URLSearchParams(location.search);
  for (const el of form.elements) {
    if (!el.name || !params.has(el.name)) continue;
    if (el.type === "checkbox") el.checked = params.get(el.name) === "1";
    else el.value = params.get(el.name);
  }
}

export function formQuery(form) {
  const query = {};
  for (const el of form.elements) {
    if (!el.name || el.type === "submit") continue;
    if (el.type === "checkbox") query[el.name] = el.checked ? "1" : "0";
    else if (el.value) query[el.name] = el.value;
  }
  return query;
}

export function writeQuery(query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== "" && v !== undefined) params.set(k, v);
  const search = params.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

/** A "Load more" button that calls `load(cursor)` and hides itself at the end. */
export function moreButton(container, cursor, load) {
  mount(container);
  if (!cursor) return;
  container.append(h("button", { class: "btn", type: "button", onclick: () => load(cursor) }, "Load more"));
}

// Audit log: who changed what, newest first; filter by action, entity and time.

import { api } from "../api.js";
import { $, errorBox, fmtTime, formQuery, h, initShell, moreButton, syncFormWithQuery, table, writeQuery } from "../ui.js";

const form = $("[data-filters]");
const list = $("[data-list]");
const more = $("[data-more]");
let rows = [];

const ENTITY_PAGES = { workflow: "/workflows/", execution: "/executions/" };

function entity(e) {
  if (!e.entity_id) return h("span", { class: "muted" }, e.entity_type);
  const base = ENTITY_PAGES[e.entity_type];
  const code = h("code", { title: e.entity_id }, e.entity_id.slice(0, 8));
  return [h("span", { class: "muted" }, `${e.entity_type} `), base ? h("a", { href: base + e.entity_id }, code) : code];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// "workflow_id 2a0e6680 · version 2 · changed definition, name": readable at a glance.
function summary(detail) {
  if (!detail || typeof detail !== "object") return "";
  return Object.entries(detail)
    .map(([k, v]) => {
      let text = Array.isArray(v) ? v.join(", ") : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
      if (UUID.test(text)) text = text.slice(0, 8);
      return `${k.replaceAll("_", " ")} ${text.length > 60 ? `${text.slice(0, 59)}…` : text}`;
    })
    .join(" · ");
}

function query() {
  const q = formQuery(form);
  // datetime-local has no zone: it is the user's local time.
  for (const name of ["since", "until"]) if (q[name]) q[name] = new Date(q[name]).toISOString();
  return q;
}

async function load(cursor = null) {
  try {
    const page = await api("/api/observability/audit", { query: { ...query(), limit: 50, cursor } });
    rows = cursor ? rows.concat(page.items) : page.items;
    list.replaceChildren(
      table(
        [
          { label: "When", cell: (e) => fmtTime(e.created_at) },
          { label: "Action", cell: (e) => h("span", { class: "tag" }, e.action) },
          { label: "Entity", cell: entity },
          { label: "Detail", cell: (e) => h("span", { class: "detail", title: e.detail ? JSON.stringify(e.detail) : "" }, summary(e.detail)) },
        ],
        rows,
        { empty: "No audit entries match." },
      ),
    );
    moreButton(more, page.next_cursor, load);
  } catch (err) {
    list.replaceChildren(errorBox(err));
  }
}

if (initShell()) {
  syncFormWithQuery(form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    writeQuery(formQuery(form));
    load();
  });
  load();
}

// Executions: filter by workflow and status; the first page refreshes while "Auto-refresh" is on.

import { api } from "../api.js";
import {
  $,
  durationBetween,
  errorBox,
  fmtDuration,
  fmtTime,
  formQuery,
  h,
  idLink,
  initShell,
  moreButton,
  poll,
  statusBadge,
  syncFormWithQuery,
  table,
  writeQuery,
} from "../ui.js";

const form = $("[data-filters]");
const list = $("[data-list]");
const more = $("[data-more]");
const names = new Map();
let rows = [];
let pagesLoaded = 1;

function filters() {
  const { workflow_id, status } = formQuery(form);
  return { workflow_id, status };
}

function render() {
  list.replaceChildren(
    table(
      [
        { label: "Status", cell: (e) => statusBadge(e.status) },
        { label: "Execution", cell: (e) => idLink(`/executions/${e.id}`, e.id) },
        {
          label: "Workflow",
          cell: (e) => h("a", { href: `/workflows/${e.workflow_id}` }, names.get(e.workflow_id) || e.workflow_id.slice(0, 8)),
        },
        { label: "Version", cell: (e) => `v${e.workflow_version}`, class: "num" },
        { label: "Trigger", cell: (e) => (e.trigger_id ? h("code", {}, e.trigger_id.slice(0, 8)) : h("span", { class: "muted" }, "api")) },
        { label: "Created", cell: (e) => fmtTime(e.created_at) },
        { label: "Finished", cell: (e) => fmtTime(e.finished_at) },
        { label: "Duration", cell: (e) => fmtDuration(durationBetween(e.started_at, e.finished_at)), class: "num" },
        { label: "Error", cell: (e) => h("span", { class: "clip error-text" }, e.error ? e.error.message || e.error.type || "error" : "") },
      ],
      rows,
      { empty: "No executions match these filters." },
    ),
  );
}

async function load(cursor = null) {
  try {
    const page = await api("/api/executions", { query: { ...filters(), limit: 50, cursor } });
    rows = cursor ? rows.concat(page.items) : page.items;
    pagesLoaded = cursor ? pagesLoaded + 1 : 1;
    render();
    moreButton(more, page.next_cursor, load);
  } catch (err) {
    list.replaceChildren(errorBox(err));
  }
}

async function workflows() {
  try {
    const page = await api("/api/workflows", { query: { limit: 200 } });
    const select = $("[data-workflow-select]");
    for (const w of page.items) {
      names.set(w.id, w.name);
      select.append(h("option", { value: w.id }, w.name));
    }
    syncFormWithQuery(form);
  } catch {
    /* the list still works without names */
  }
}

async function main() {
  syncFormWithQuery(form);
  await workflows();
  const live = () => form.elements.live.checked;
  // Refresh only while the user has not paged further: new rows would shift theirs.
  const refresher = poll(() => load(), 3000, () => live() && pagesLoaded === 1);
  form.addEventListener("change", () => {
    writeQuery(filters());
    refresher.kick();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
}

if (initShell()) main();

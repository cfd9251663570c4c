// Dead letters: steps that failed after their retries; inspect, replay, discard.

import { api, optional } from "../api.js";
import {
  $,
  errorBox,
  fmtTime,
  formQuery,
  h,
  idLink,
  initShell,
  jsonBlock,
  mount,
  moreButton,
  notAvailable,
  syncFormWithQuery,
  table,
  toast,
  writeQuery,
} from "../ui.js";

const form = $("[data-filters]");
const list = $("[data-list]");
const more = $("[data-more]");
const detail = $("[data-detail]");
let rows = [];
let current = null;
const names = new Map();

function errorText(err) {
  if (!err) return "";
  if (typeof err === "string") return err;
  return err.message || err.type || JSON.stringify(err);
}

function render() {
  list.replaceChildren(
    table(
      [
        { label: "Dead since", cell: (d) => fmtTime(d.created_at) },
        {
          label: "Execution",
          cell: (d) => [
            idLink(`/executions/${d.execution_id}`, d.execution_id),
            d.workflow_id ? h("div", { class: "small" }, h("a", { class: "muted", href: `/workflows/${d.workflow_id}` }, names.get(d.workflow_id) || d.workflow_id.slice(0, 8))) : null,
          ],
        },
        {
          label: "Node",
          cell: (d) => h("button", { class: "link", type: "button", title: "Inspect", onclick: () => inspect(d.id) }, h("code", {}, d.node_id)),
        },
        { label: "Error", cell: (d) => h("span", { class: "clip narrow error-text", title: errorText(d.error) }, errorText(d.error)) },
        { label: "Status", cell: (d) => h("span", { class: `badge dl-${d.status || "dead"}` }, d.status || "dead") },
      ],
      rows,
      { empty: "No dead letters: every failed step is retried or replayed.", rowAttrs: (d) => ({ class: `clickable${current === d.id ? " selected" : ""}`, onclick: (e) => e.target.closest("a, button") || inspect(d.id) }) },
    ),
  );
}

async function load(cursor = null) {
  try {
    const page = await optional("/api/dead-letters", { query: { ...formQuery(form), limit: 50, cursor } });
    if (!page) return list.replaceChildren(notAvailable("The dead-letter API"));
    rows = cursor ? rows.concat(page.items) : page.items;
    render();
    moreButton(more, page.next_cursor, load);
  } catch (err) {
    list.replaceChildren(errorBox(err));
  }
}

async function inspect(id) {
  current = id;
  render();
  try {
    const d = await api(`/api/dead-letters/${id}`);
    mount(
      detail,
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, d.id)),
        h("dt", {}, "Execution"), h("dd", {}, idLink(`/executions/${d.execution_id}`, d.execution_id)),
        h("dt", {}, "Node"), h("dd", {}, h("code", {}, d.node_id)),
        h("dt", {}, "Queue"), h("dd", {}, d.queue || "—"),
        h("dt", {}, "Status"), h("dd", {}, d.status || "dead"),
        h("dt", {}, "Created"), h("dd", {}, fmtTime(d.created_at)),
        d.replayed_at ? [h("dt", {}, "Replayed"), h("dd", {}, fmtTime(d.replayed_at))] : null,
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "btn primary", type: "button", disabled: d.status === "replayed", title: d.status === "replayed" ? "Already replayed" : "Re-run this step and resume its execution", onclick: () => replay(d) }, "Replay"),
        h("button", { class: "btn danger", type: "button", onclick: () => discard(d) }, "Discard"),
      ),
      h("h3", {}, "Error"),
      jsonBlock(d.error),
      h("h3", {}, "Message"),
      jsonBlock(d.message),
    );
  } catch (err) {
    mount(detail, errorBox(err));
  }
}

async function replay(d) {
  try {
    const result = await api(`/api/dead-letters/${d.id}/replay`, { method: "POST" });
    const executionId = result?.execution_id || d.execution_id;
    toast("Replayed: the step runs again and its execution resumes.", "success");
    const resumed = result?.resumed_nodes?.length ? ` Resumed: ${result.resumed_nodes.join(", ")}.` : "";
    mount(detail, h("div", { class: "alert success" }, `Replay queued.${resumed} `, h("a", { href: `/executions/${executionId}` }, "Watch the execution")));
  } catch (err) {
    toast(`Replay failed: ${err.message}`, "error");
  }
  load();
}

async function discard(d) {
  if (!confirm("Discard this dead letter? Its message is dropped for good.")) return;
  try {
    await api(`/api/dead-letters/${d.id}`, { method: "DELETE" });
    toast("Discarded.", "success");
    mount(detail, h("p", { class: "muted" }, "Discarded."));
    current = null;
  } catch (err) {
    toast(`Discard failed: ${err.message}`, "error");
  }
  load();
}

async function workflows() {
  try {
    const page = await api("/api/workflows", { query: { limit: 200 } });
    const select = $("[data-workflow-select]");
    for (const w of page.items) {
      names.set(w.id, w.name);
      select.append(h("option", { value: w.id }, w.name));
    }
  } catch {
    /* names are a nicety */
  }
}

async function main() {
  await workflows();
  syncFormWithQuery(form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    writeQuery(formQuery(form));
    load();
  });
  load();
}

if (initShell()) main();

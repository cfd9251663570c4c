// One workflow: its graph, versions, compiled plan, recent executions and a Run form.

import { api, optional } from "../api.js";
import { dagOf, drawGraph, fitScale, positionsFor, serverlessChain } from "../dag.js";
import {
  $,
  durationBetween,
  errorBox,
  fmtDuration,
  fmtTime,
  h,
  idLink,
  initShell,
  mount,
  notAvailable,
  parseJsonField,
  prettyJson,
  statusBadge,
  table,
  toast,
} from "../ui.js";

const root = $("[data-root]");
const workflowId = root.dataset.workflowId;
let workflow = null;

async function load() {
  try {
    workflow = await api(`/api/workflows/${workflowId}`);
  } catch (err) {
    mount(root, errorBox(err));
    return;
  }
  document.title = `${workflow.name} · Canvasflow`;
  $("[data-title]").textContent = workflow.name;
  $("[data-subtitle]").replaceChildren(
    h("span", { class: "tag" }, workflow.format),
    ` version ${workflow.version} · updated `,
    fmtTime(workflow.updated_at),
    workflow.description ? ` · ${workflow.description}` : "",
  );
  showDefinition(workflow.version, workflow.definition);
  versions();
  executions();
  plan();
}

function showDefinition(version, definition) {
  $("[data-graph-version]").textContent = `v${version}`;
  $("[data-definition-version]").textContent = `v${version}`;
  $("[data-definition]").textContent = prettyJson(definition);
  const graph = $("[data-graph]");
  const dag = dagOf(definition) || serverlessChain(definition);
  if (!dag) {
    mount(graph, h("p", { class: "empty" }, "No graph to draw: see the definition below."));
    return;
  }
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "dag");
  mount(graph, svg);
  const { positions, bends } = positionsFor(dag.nodes, dag.edges);
  drawGraph(svg, dag.nodes, dag.edges, { positions, bends, scale: fitScale(positions, graph.clientWidth - 4) });
}

async function versions() {
  const box = $("[data-versions]");
  try {
    const page = await api(`/api/workflows/${workflowId}/versions`, { query: { limit: 50 } });
    mount(
      box,
      table(
        [
          { label: "Version", cell: (v) => `v${v.version}${v.version === workflow.version ? " (current)" : ""}` },
          { label: "Format", cell: (v) => v.format },
          { label: "Created", cell: (v) => fmtTime(v.created_at) },
          {
            label: "",
            class: "row-actions",
            cell: (v) => h("button", { class: "btn small", type: "button", onclick: () => showVersion(v.version) }, "View"),
          },
        ],
        page.items,
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function showVersion(version) {
  try {
    const v = await api(`/api/workflows/${workflowId}/versions/${version}`);
    showDefinition(version, v.definition);
  } catch (err) {
    toast(err.message, "error");
  }
}

async function executions() {
  const box = $("[data-executions]");
  try {
    const page = await api("/api/executions", { query: { workflow_id: workflowId, limit: 10 } });
    mount(
      box,
      table(
        [
          { label: "Status", cell: (e) => statusBadge(e.status) },
          { label: "Execution", cell: (e) => idLink(`/executions/${e.id}`, e.id) },
          { label: "Version", cell: (e) => `v${e.workflow_version}` },
          { label: "Created", cell: (e) => fmtTime(e.created_at) },
          { label: "Duration", cell: (e) => fmtDuration(durationBetween(e.started_at, e.finished_at)), class: "num" },
        ],
        page.items,
        { empty: "Not run yet." },
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

function canvasTree(spec) {
  if (!spec) return null;
  if (spec.type === "task") return h("li", {}, h("span", { class: "canvas-task" }, spec.node));
  if (spec.type === "batch")
    return h("li", {}, h("span", { class: "canvas-kind kind-batch" }, `one task runs ${spec.nodes.length} pure nodes in turn`), " ", h("span", { class: "canvas-task" }, spec.nodes.join(", ")));
  const children = spec.type === "chord" ? [...spec.header, spec.body] : spec.tasks || [];
  const bodyName = spec.type === "chord" ? spec.body.node || spec.body.nodes.join(", ") : "";
  const label = spec.type === "chord" ? `chord (${spec.header.length} in header → ${bodyName})` : `${spec.type} (${children.length})`;
  return h("li", {}, h("span", { class: `canvas-kind kind-${spec.type}` }, label), h("ul", {}, children.map(canvasTree)));
}

async function plan() {
  const box = $("[data-plan]");
  try {
    const data = await optional(`/api/workflows/${workflowId}/plan`);
    if (!data) return mount(box, notAvailable("The compiled plan"));
    mount(
      box,
      h("p", { class: "small" }, `Chords: ${data.chords ? "native (result backend joins)" : "database counters"}`),
      h(
        "div",
        { class: "plan-regions" },
        (data.regions || []).map((r) =>
          h(
            "div",
            { class: "plan-region" },
            h("h3", {}, "Region from ", h("code", {}, r.entry)),
            h("ul", { class: "canvas-tree" }, canvasTree(r.canvas)),
            r.published
              ? h(
                  "details",
                  {},
                  h("summary", {}, `Published as ${r.tasks} Celery task${r.tasks === 1 ? "" : "s"} (pure nodes share tasks)`),
                  h("ul", { class: "canvas-tree" }, canvasTree(r.published)),
                )
              : null,
          ),
        ),
      ),
      data.database_joins && data.database_joins.length
        ? h(
            "div",
            {},
            h("h3", {}, "Database joins"),
            table(
              [
                { label: "Node", cell: (j) => h("code", {}, j.node) },
                { label: "Counter", cell: (j) => j.counter, class: "num" },
                { label: "Sources", cell: (j) => j.sources.join(", ") },
              ],
              data.database_joins,
            ),
          )
        : null,
      h("details", {}, h("summary", {}, "Raw plan JSON"), h("pre", { class: "json" }, prettyJson(data))),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

function wireRun() {
  const form = $("[data-run-form]");
  const error = $("[data-run-error]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let input;
    try {
      input = parseJsonField(form.elements.input.value, null);
    } catch (err) {
      error.textContent = `Input is not valid JSON: ${err.message}`;
      error.hidden = false;
      return;
    }
    const body = { workflow_id: workflowId, input };
    const key = form.elements.idempotency_key.value.trim();
    if (key) body.idempotency_key = key;
    try {
      const execution = await api("/api/executions", { method: "POST", body });
      location.assign(`/executions/${execution.id}`);
    } catch (err) {
      error.replaceChildren(errorBox(err));
      error.hidden = false;
    }
  });
  $("[data-delete]").addEventListener("click", async () => {
    if (!workflow || !confirm(`Delete workflow "${workflow.name}"? Its executions stay readable; its triggers are disabled.`)) return;
    try {
      await api(`/api/workflows/${workflowId}`, { method: "DELETE" });
      location.assign("/workflows");
    } catch (err) {
      toast(err.message, "error");
    }
  });
}

if (initShell()) {
  wireRun();
  load();
}

// The live execution page: the DAG coloured by step status, a Gantt chart of every
// attempt (GET /api/executions/:id/timeline), step details, cancel and retry.
// Refreshes every second while the execution is pending or running.

import { api, ApiError } from "../api.js";
import { dagOf, drawGraph, fitScale, positionsFor, serverlessChain } from "../dag.js";
import {
  $,
  LIVE_STATUSES,
  STEP_STATUSES,
  durationBetween,
  errorBox,
  fmtDuration,
  fmtTime,
  h,
  initShell,
  jsonBlock,
  mount,
  poll,
  prettyJson,
  s,
  statusBadge,
  toast,
} from "../ui.js";

const root = $("[data-root]");
const executionId = root.dataset.executionId;
const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
svg.setAttribute("class", "dag");

let execution = null;
let timeline = [];
let graph = null; // {nodes, edges, positions, bends}
let selected = null;
let poller = null;
let workflowName = null;

const stepOf = (id) => (execution ? execution.steps.find((st) => st.node_id === id) : undefined);

async function refresh() {
  try {
    const [e, t] = await Promise.all([
      api(`/api/executions/${executionId}`),
      api(`/api/executions/${executionId}/timeline`).catch(() => timeline),
    ]);
    execution = e;
    timeline = Array.isArray(t) ? t : [];
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      mount(root, errorBox(err));
      poller?.stop();
    } else {
      toast(`Refresh failed: ${err.message}`, "error");
    }
    return;
  }
  if (!graph) graph = await loadGraph();
  render();
}

async function loadGraph() {
  api(`/api/workflows/${execution.workflow_id}`)
    .then((wf) => {
      $("[data-workflow-link]").textContent = `${wf.name} v${execution.workflow_version}`;
      workflowName = wf.name;
    })
    .catch(() => {});
  let definition = null;
  try {
    const v = await api(`/api/workflows/${execution.workflow_id}/versions/${execution.workflow_version}`);
    definition = v.definition;
  } catch {
    // The workflow was deleted: draw the steps we know, without edges.
  }
  const dag = dagOf(definition) || serverlessChain(definition) || { nodes: [], edges: [] };
  // Steps the drawing does not know (nested Serverless tasks, a deleted workflow) join it unlinked.
  const known = new Set(dag.nodes.map((n) => n.id));
  for (const st of execution.steps) {
    if (!known.has(st.node_id)) dag.nodes.push({ id: st.node_id, type: st.node_type });
  }
  return { ...dag, ...positionsFor(dag.nodes, dag.edges) };
}

function render() {
  const live = LIVE_STATUSES.has(execution.status);
  document.title = `Execution ${execution.id.slice(0, 8)} (${execution.status}) · Canvasflow`;
  mount($("[data-status]"), statusBadge(execution.status));
  const link = $("[data-workflow-link]");
  link.href = `/workflows/${execution.workflow_id}`;
  link.textContent = `${workflowName || `workflow ${execution.workflow_id.slice(0, 8)}`} v${execution.workflow_version}`;
  mount(
    $("[data-subtitle]"),
    "created ",
    fmtTime(execution.created_at),
    " · started ",
    fmtTime(execution.started_at),
    " · finished ",
    fmtTime(execution.finished_at),
    ` · ${fmtDuration(durationBetween(execution.started_at, execution.finished_at))}`,
    execution.trigger_id ? ` · trigger ${execution.trigger_id.slice(0, 8)}` : "",
  );
  $("[data-live]").hidden = !live;
  $("[data-action=cancel]").hidden = !live;
  $("[data-action=retry]").hidden = execution.status !== "failed";

  drawDag();
  drawGantt();
  drawStep();
  $("[data-input]").textContent = prettyJson(execution.input);
  $("[data-output]").textContent = execution.output === null ? "—" : prettyJson(execution.output);
  $("[data-error]").textContent = execution.error ? prettyJson(execution.error) : "—";
}

function statusOf(id) {
  return stepOf(id)?.status || "pending";
}

/** true when the edge was taken, false when it cannot be, null while undecided. */
function takenEdge(edge) {
  const src = stepOf(edge.source);
  if (!src || !["succeeded", "skipped", "failed", "cancelled"].includes(src.status)) return null;
  if (src.status !== "succeeded") return false;
  if (!edge.when) return true;
  const result = Boolean(src.output && src.output.result);
  return edge.when === String(result);
}

function drawDag() {
  const box = $("[data-graph]");
  if (!box.contains(svg)) mount(box, svg);
  drawGraph(svg, graph.nodes, graph.edges, {
    positions: graph.positions,
    bends: graph.bends,
    statusOf,
    takenEdge,
    selectedNode: selected,
    scale: fitScale(graph.positions, box.clientWidth - 4),
    onSelect: (sel) => {
      selected = sel && sel.kind === "node" ? sel.id : null;
      drawDag();
      drawGantt();
      drawStep();
    },
  });
  const legend = $("[data-legend]");
  if (!legend.childElementCount) {
    mount(legend, STEP_STATUSES.map((st) => h("span", { class: `legend-item status-${st}` }, h("i", {}), st)));
  }
}

function drawStep() {
  const box = $("[data-step]");
  $("[data-step-title]").textContent = selected ? selected : "(select a node)";
  if (!selected) return mount(box, h("p", { class: "muted" }, "Click a node in the graph or a bar in the timeline."));
  const step = stepOf(selected);
  if (!step) return mount(box, h("p", { class: "muted" }, "This step has not been reached yet."));
  mount(
    box,
    h(
      "dl",
      { class: "kv" },
      h("dt", {}, "Status"),
      h("dd", {}, statusBadge(step.status)),
      h("dt", {}, "Type"),
      h("dd", {}, step.node_type),
      h("dt", {}, "Attempts"),
      h("dd", {}, String(step.attempts)),
      h("dt", {}, "Started"),
      h("dd", {}, fmtTime(step.started_at)),
      h("dt", {}, "Finished"),
      h("dd", {}, fmtTime(step.finished_at)),
      h("dt", {}, "Duration"),
      h("dd", {}, fmtDuration(durationBetween(step.started_at, step.finished_at))),
      step.wake_at ? [h("dt", {}, "Wakes at"), h("dd", {}, fmtTime(step.wake_at))] : null,
    ),
    step.error ? [h("h3", {}, "Error"), jsonBlock(step.error)] : null,
    h("h3", {}, "Input"),
    jsonBlock(step.input),
    h("h3", {}, "Output"),
    jsonBlock(step.output),
  );
}

const TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 3e4, 6e4, 12e4, 3e5, 6e5, 18e5, 36e5];
const ROW = 24;
const LABEL_W = 150;
const AXIS_H = 24;

function drawGantt() {
  const box = $("[data-gantt]");
  if (!timeline.length) return mount(box, h("p", { class: "empty" }, LIVE_STATUSES.has(execution.status) ? "Waiting for the first step…" : "No attempts recorded."));
  const now = Date.now();
  const starts = timeline.map((r) => Date.parse(r.started_at)).filter(Number.isFinite);
  const t0 = Math.min(...starts, Date.parse(execution.started_at) || Infinity);
  const ends = timeline.map((r) => (r.finished_at ? Date.parse(r.finished_at) : now));
  const t1 = Math.max(...ends, execution.finished_at ? Date.parse(execution.finished_at) : now, t0 + 1);
  const span = t1 - t0;
  const width = Math.max(480, box.clientWidth || 900);
  const chartW = width - LABEL_W - 16;
  const height = AXIS_H + timeline.length * ROW + 8;
  const x = (t) => LABEL_W + ((t - t0) / span) * chartW;
  const step = TICKS.find((t) => span / t <= 8) || 36e5;

  const chart = s("svg", { class: "gantt-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Timeline of step attempts" });
  const axis = s("g", { class: "gantt-axis" });
  for (let t = 0; t <= span; t += step) {
    axis.append(s("line", { x1: x(t0 + t), x2: x(t0 + t), y1: AXIS_H - 4, y2: height }));
    if (x(t0 + t) + 50 < width) axis.append(s("text", { x: x(t0 + t) + 3, y: 14 }, fmtDuration(t)));
  }
  chart.append(axis);
  timeline.forEach((r, i) => {
    const y = AXIS_H + i * ROW;
    const start = Date.parse(r.started_at);
    const end = r.finished_at ? Date.parse(r.finished_at) : now;
    const ms = r.duration_ms ?? (Number.isFinite(start) ? end - start : null);
    // The duration goes right of its bar, else left of it, else inside it.
    const where = x(end) + 60 < width ? "right" : x(start) - 60 > LABEL_W ? "left" : "inside";
    const label = { right: [x(end) + 6, "start"], left: [x(start) - 6, "end"], inside: [x(end) - 6, "end"] }[where];
    const cls = `gantt-row${r.node_id === selected ? " selected" : ""}`;
    const row = s(
      "g",
      { class: cls, "data-node-id": r.node_id, "data-status": r.status },
      s("rect", { class: "gantt-band", x: 0, y, width, height: ROW }),
      s("text", { class: "gantt-label", x: 8, y: y + 16 }, `${r.node_id}`, s("tspan", { class: "gantt-attempt" }, `  #${r.attempt ?? 0}`)),
    );
    if (Number.isFinite(start)) {
      row.append(
        s(
          "rect",
          {
            class: `gantt-bar status-${r.status}${r.finished_at ? "" : " open"}`,
            x: x(start),
            y: y + 5,
            width: Math.max(3, x(end) - x(start)),
            height: ROW - 10,
            rx: 3,
          },
          s("title", {}, `${r.node_id} attempt ${r.attempt ?? 0}: ${r.status}, ${fmtDuration(ms)}`),
        ),
        s(
          "text",
          { class: `gantt-duration ${where}`, x: label[0], y: y + 16, "text-anchor": label[1] },
          fmtDuration(ms),
        ),
      );
    }
    chart.append(row);
  });
  chart.addEventListener("click", (event) => {
    const row = event.target.closest("[data-node-id]");
    if (!row) return;
    selected = row.dataset.nodeId;
    drawDag();
    drawGantt();
    drawStep();
  });
  mount(box, chart);
}

async function act(action) {
  const verb = action === "cancel" ? "Cancel" : "Retry";
  if (action === "cancel" && !confirm("Cancel this execution? Running steps are revoked.")) return;
  try {
    await api(`/api/executions/${executionId}/${action}`, { method: "POST" });
    toast(`${verb} requested.`, "success");
  } catch (err) {
    toast(`${verb} failed: ${err.message}`, "error");
  }
  poller.kick();
}

if (initShell()) {
  $("[data-action=cancel]").addEventListener("click", () => act("cancel"));
  $("[data-action=retry]").addEventListener("click", () => act("retry"));
  // Keep polling while live; one last refresh happens when it turns terminal.
  poller = poll(refresh, 1000, () => !execution || LIVE_STATUSES.has(execution.status));
  window.addEventListener("resize", () => execution && drawGantt());
}

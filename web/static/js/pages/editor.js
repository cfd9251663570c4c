// The visual DAG editor: add nodes from the palette, drag them, connect ports, edit
// config in the inspector, validate through the API and save as a new version.
// Every 422 problem is pinned to the node or edge its JSON pointer names.

import { api, ApiError } from "../api.js";
import { NODE_H, NODE_TYPES, NODE_W, bounds, drawGraph, edgePath, icon, layeredLayout, pathMidpoint } from "../dag.js";
import { Doc } from "../editor/model.js";
import { defaultConfig } from "../editor/forms.js";
import { renderInspector } from "../editor/inspector.js";
import { $, errorBox, h, initShell, mount, prettyJson, s, toast } from "../ui.js";

const root = $("[data-root]");
let workflowId = root.dataset.workflowId || null;
const svg = $("[data-canvas]");
const wrap = $("[data-canvas-wrap]");
const inspector = $("[data-inspector]");
const statusLine = $("[data-status-line]");
const nameInput = $("[data-field=name]");
const descriptionInput = $("[data-field=description]");
const callouts = h("div", { class: "callouts", "aria-hidden": "true" });
wrap.append(callouts);

const doc = new Doc();
let selection = null; // {kind: "node", node} | {kind: "edge", edge} | null
let dirty = false;
let format = "dag"; // a Serverless Workflow document is edited as JSON only
let rawDefinition = null;
let scale = 1; // zoom: the drawing keeps its coordinates, the SVG is shown scaled

// -- drawing --------------------------------------------------------------------------------

function positions() {
  return Object.fromEntries(doc.nodes.map((n) => [n.id, n.position]));
}

function drawCanvas() {
  drawGraph(svg, doc.nodes, doc.edges, {
    positions: positions(),
    bends: doc.bends,
    editable: true,
    selectedNode: selection?.kind === "node" ? selection.node.id : null,
    selectedEdge: selection?.kind === "edge" ? selection.edge : null,
    problemNodes: doc.problemCounts(),
    problemEdges: new Set(doc.problems.byEdge.keys()),
    minWidth: wrap.clientWidth / scale + 240,
    minHeight: wrap.clientHeight / scale + 160,
    scale,
  });
  $("[data-zoom-level]").textContent = `${Math.round(scale * 100)}%`;
  drawCallouts();
}

// Problems shown next to what they name: under a node, at an edge's midpoint.
function drawCallouts() {
  callouts.replaceChildren();
  for (const [node, list] of doc.problems.byNode) {
    if (!doc.nodes.includes(node)) continue;
    callouts.append(callout(list, node.position.x, node.position.y + NODE_H + 6, { kind: "node", node }));
  }
  for (const [edge, list] of doc.problems.byEdge) {
    const index = doc.edges.indexOf(edge);
    const path = svg.querySelector(`[data-edge-index="${index}"] .edge-line`);
    if (index < 0 || !path) continue;
    const mid = pathMidpoint(path);
    callouts.append(callout(list, mid.x - NODE_W / 2, mid.y + 12, { kind: "edge", edge }));
  }
}

// The API prefixes messages with what they are about ("node 'x': ..."); next to it, that is noise.
function shortMessage(p) {
  return p.target ? p.message.replace(/^(edge \S+->\S+|node '[^']*'): /, "") : p.message;
}

function callout(list, x, y, target) {
  const el = h("div", { class: "callout", "data-callout": target.kind }, list.map((p) => h("p", {}, shortMessage(p))));
  el.style.left = `${Math.max(0, x) * scale}px`;
  el.style.top = `${y * scale}px`;
  el.addEventListener("click", () => select(target));
  return el;
}

function drawInspector() {
  renderInspector(inspector, doc, selection, { changed, select, remove });
}

function drawProblems() {
  const panel = $("[data-problems]");
  const list = $("[data-problem-list]");
  const all = doc.problems.all;
  panel.hidden = !all.length;
  mount(
    list,
    all.map((p) => {
      const where = p.target
        ? p.target.kind === "node"
          ? `node ${p.target.node.id}`
          : `edge ${p.target.edge.source} → ${p.target.edge.target}`
        : /^\/(name|description)$/.test(p.pointer || "")
          ? p.pointer.slice(1)
          : "workflow";
      return h(
        "li",
        {},
        p.target
          ? h("button", { class: "link", type: "button", onclick: () => select(p.target) }, where)
          : h("code", {}, where),
        ": ",
        shortMessage(p),
      );
    }),
  );
  nameInput.classList.toggle("invalid", doc.problems.fields.some((p) => p.pointer === "/name"));
}

function redraw() {
  drawCanvas();
  drawInspector();
  drawProblems();
}

// -- edits ----------------------------------------------------------------------------------

function changed({ inspector: again = false } = {}) {
  dirty = true;
  drawCanvas();
  if (again) drawInspector();
}

function select(target) {
  selection = target && (target.node || target.edge) ? target : null;
  redraw();
  if (selection?.kind === "node") svg.querySelector(`[data-node-id="${CSS.escape(selection.node.id)}"]`)?.scrollIntoView({ block: "nearest", inline: "nearest" });
}

function remove(target) {
  if (target.kind === "node") doc.removeNode(target.node);
  else doc.removeEdge(target.edge);
  selection = null;
  dirty = true;
  redraw();
}

function addNode(type) {
  const from = selection?.kind === "node" ? selection.node : null;
  const node = doc.addNode(type, defaultConfig(type), from);
  // A new node hangs off the selected one: building a chain is one click per step.
  if (from && from.type !== "end" && type !== "start") doc.addEdge(from.id, node.id, doc.nextWhen(from.id));
  dirty = true;
  select({ kind: "node", node });
}

function autoLayout() {
  const { positions: laid, bends } = layeredLayout(doc.nodes, doc.edges);
  for (const n of doc.nodes) n.position = { x: Math.round(laid[n.id].x), y: Math.round(laid[n.id].y) };
  doc.bends = bends;
  changed();
}

function zoom(how) {
  if (how === "initial") {
    // Fit a big graph, but never below 60%: past that the labels are unreadable.
    const b = bounds(positions());
    scale = Math.max(0.6, Math.min(1, (wrap.clientWidth - 8) / b.width));
  } else if (how === "in") scale = Math.min(2, scale * 1.25);
  else if (how === "out") scale = Math.max(0.25, scale / 1.25);
  else if (how === "reset") scale = 1;
  else {
    const b = bounds(positions());
    scale = Math.max(0.25, Math.min(1, (wrap.clientWidth - 8) / b.width, (wrap.clientHeight - 8) / b.height));
  }
  drawCanvas();
}

// -- pointer: drag nodes, drag from a port to connect ------------------------------------------

function svgPoint(event) {
  const box = svg.getBoundingClientRect();
  return { x: (event.clientX - box.left) / scale, y: (event.clientY - box.top) / scale };
}

svg.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  const nodeEl = event.target.closest("[data-node-id]");
  const node = nodeEl && doc.node(nodeEl.dataset.nodeId);
  if (node && event.target.closest("[data-port=out]")) return connectFrom(node, event);
  if (node) return dragNode(node, event);
  const edgeEl = event.target.closest("[data-edge-index]");
  if (edgeEl) return select({ kind: "edge", edge: doc.edges[Number(edgeEl.dataset.edgeIndex)] });
  select(null);
});

function dragNode(node, event) {
  event.preventDefault();
  if (selection?.node !== node) select({ kind: "node", node });
  const start = svgPoint(event);
  const origin = { ...node.position };
  let moved = false;
  svg.setPointerCapture(event.pointerId);
  const move = (e) => {
    const p = svgPoint(e);
    const dx = p.x - start.x;
    const dy = p.y - start.y;
    if (!moved && Math.hypot(dx, dy) < 3) return;
    if (!moved) doc.dropBends(node.id);
    moved = true;
    node.position = { x: Math.max(0, Math.round((origin.x + dx) / 4) * 4), y: Math.max(0, Math.round((origin.y + dy) / 4) * 4) };
    drawCanvas();
  };
  const up = () => {
    svg.removeEventListener("pointermove", move);
    svg.removeEventListener("pointerup", up);
    svg.removeEventListener("pointercancel", up);
    if (moved) dirty = true;
  };
  svg.addEventListener("pointermove", move);
  svg.addEventListener("pointerup", up);
  svg.addEventListener("pointercancel", up);
}

function connectFrom(node, event) {
  event.preventDefault();
  const line = s("path", { class: "edge-draft" });
  svg.append(line);
  svg.setPointerCapture(event.pointerId);
  const move = (e) => {
    const p = svgPoint(e);
    line.setAttribute("d", edgePath(node.position, { x: p.x, y: p.y - NODE_H / 2 }));
  };
  const up = (e) => {
    svg.removeEventListener("pointermove", move);
    svg.removeEventListener("pointerup", up);
    line.remove();
    const hit = document.elementFromPoint(e.clientX, e.clientY)?.closest("[data-node-id]");
    const target = hit && doc.node(hit.dataset.nodeId);
    if (target && target !== node) {
      const edge = doc.addEdge(node.id, target.id, doc.nextWhen(node.id));
      if (edge) {
        dirty = true;
        select({ kind: "edge", edge });
      }
    }
  };
  svg.addEventListener("pointermove", move);
  svg.addEventListener("pointerup", up);
}

document.addEventListener("keydown", (event) => {
  const focused = event.target.closest?.("[data-node-id]");
  if (focused && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    const node = doc.node(focused.dataset.nodeId);
    if (node) select({ kind: "node", node });
    svg.querySelector(`[data-node-id="${CSS.escape(focused.dataset.nodeId)}"]`)?.focus();
    return;
  }
  if (!selection || event.target.closest("input, textarea, select, [contenteditable]")) return;
  if (event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    remove(selection);
  } else if (selection.kind === "node" && event.key.startsWith("Arrow")) {
    event.preventDefault();
    const step = event.shiftKey ? 40 : 8;
    const p = selection.node.position;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[event.key];
    selection.node.position = { x: Math.max(0, p.x + d[0]), y: Math.max(0, p.y + d[1]) };
    doc.dropBends(selection.node.id);
    changed();
  }
});

// -- JSON mode --------------------------------------------------------------------------------

function currentDefinition() {
  if (format === "dag") return doc.toDefinition();
  // A Serverless Workflow document is edited as text: what is in the box is what is sent.
  const text = $("[data-json-text]").value;
  return text.trim() ? JSON.parse(text) : rawDefinition;
}

/** The definition to send, or null after telling the user why there is none. */
function definitionToSend() {
  try {
    return currentDefinition();
  } catch (err) {
    setStatus(h("span", { class: "error-text" }, `The definition is not valid JSON: ${err.message}`));
    return null;
  }
}

function toggleJson(open) {
  const panel = $("[data-json-panel]");
  const show = open ?? panel.hidden;
  panel.hidden = !show;
  $("[data-action=json]").setAttribute("aria-pressed", String(show));
  $("[data-json-error]").hidden = true;
  if (show) $("[data-json-text]").value = prettyJson(currentDefinition());
}

function applyJson() {
  const error = $("[data-json-error]");
  try {
    const definition = JSON.parse($("[data-json-text]").value);
    if (!definition || typeof definition !== "object" || Array.isArray(definition)) throw new Error("The definition must be a JSON object.");
    if (format === "dag") {
      if (!Array.isArray(definition.nodes)) throw new Error('A DAG definition needs a "nodes" array.');
      doc.load(definition);
      selection = null;
      toggleJson(false);
    } else {
      rawDefinition = definition;
    }
    dirty = true;
    redraw();
    setStatus("JSON applied.");
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
}

// -- validate and save --------------------------------------------------------------------------

function setStatus(...parts) {
  mount(statusLine, ...parts);
}

function sentSnapshot() {
  return { nodes: [...doc.nodes], edges: [...doc.edges] };
}

function showProblems(err, sent) {
  doc.setProblems(err.problems, sent);
  redraw();
  const n = doc.problems.all.length;
  setStatus(h("span", { class: "error-text" }, `${n} problem${n === 1 ? "" : "s"}: see the highlighted nodes and edges.`));
}

async function validate() {
  const sent = sentSnapshot();
  const definition = definitionToSend();
  if (!definition) return;
  setStatus("Validating…");
  try {
    // A blank name is always refused, so this request can never create anything, and
    // the API reports every definition problem alongside it (one 422, all problems).
    const created = await api("/api/workflows", { method: "POST", body: { name: "", definition } });
    if (created?.id) await api(`/api/workflows/${created.id}`, { method: "DELETE" });
    doc.clearProblems();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 422) {
      setStatus(errorBox(err));
      return;
    }
    const problems = err.problems.filter((p) => p.pointer !== "/name");
    if (problems.length) return showProblems({ problems }, sent);
    doc.clearProblems();
  }
  redraw();
  setStatus(h("span", { class: "ok-text" }, "✓ Valid: the API accepts this workflow."));
}

async function save() {
  const name = nameInput.value.trim();
  if (!name) {
    nameInput.classList.add("invalid");
    nameInput.focus();
    setStatus(h("span", { class: "error-text" }, "Give the workflow a name."));
    return;
  }
  const sent = sentSnapshot();
  const definition = definitionToSend();
  if (!definition) return;
  const body = { name, description: descriptionInput.value.trim() || null, definition };
  setStatus("Saving…");
  try {
    const saved = workflowId
      ? await api(`/api/workflows/${workflowId}`, { method: "PUT", body })
      : await api("/api/workflows", { method: "POST", body });
    const created = !workflowId;
    workflowId = saved.id;
    dirty = false;
    doc.clearProblems();
    redraw();
    showSaved(saved, created);
  } catch (err) {
    if (err instanceof ApiError && err.status === 422) return showProblems(err, sent);
    setStatus(errorBox(err));
  }
}

function showSaved(saved, created) {
  if (created) {
    history.replaceState(null, "", `/workflows/${saved.id}/edit`);
    $("[data-action=save]").textContent = "Save as new version";
    const back = $("[data-back]");
    back.href = `/workflows/${saved.id}`;
    back.hidden = false;
  }
  $("[data-back]").textContent = saved.name;
  $("[data-version]").textContent = `v${saved.version}`;
  setStatus(
    h("span", { class: "ok-text", "data-saved": saved.version }, `✓ Saved as version ${saved.version}.`),
    " ",
    h("a", { href: `/workflows/${saved.id}`, "data-open-workflow": "" }, "Open workflow"),
  );
  toast(`Saved ${saved.name} v${saved.version}`, "success");
}

// -- start-up -----------------------------------------------------------------------------------

async function load() {
  if (!workflowId) {
    nameInput.focus();
    redraw();
    return;
  }
  try {
    const wf = await api(`/api/workflows/${workflowId}`);
    nameInput.value = wf.name;
    descriptionInput.value = wf.description || "";
    $("[data-version]").textContent = `v${wf.version}`;
    $("[data-back]").textContent = wf.name;
    document.title = `Edit ${wf.name} · Canvasflow`;
    if (Array.isArray(wf.definition?.nodes)) {
      doc.load(wf.definition);
      zoom("initial");
    } else {
      format = "serverless";
      rawDefinition = wf.definition;
      root.classList.add("json-only");
      setStatus("A Serverless Workflow document: edit it as JSON.");
      toggleJson(true);
    }
    redraw();
  } catch (err) {
    mount(root, errorBox(err));
  }
}

function wire() {
  mount(
    $("[data-palette]"),
    NODE_TYPES.map((t) =>
      h(
        "button",
        { class: `palette-item type-${t.type}`, type: "button", "data-add": t.type, title: `Add a ${t.type} node` },
        icon(t.type),
        t.label,
      ),
    ),
  );
  $("[data-palette]").addEventListener("click", (event) => {
    const button = event.target.closest("[data-add]");
    if (button) addNode(button.dataset.add);
  });
  root.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "layout") autoLayout();
    else if (action === "json") toggleJson();
    else if (action === "json-apply") applyJson();
    else if (action === "validate") validate();
    else if (action === "save") save();
  });
  $(".zoom").addEventListener("click", (event) => {
    const how = event.target.closest("[data-zoom]")?.dataset.zoom;
    if (how) zoom(how);
  });
  for (const input of [nameInput, descriptionInput]) {
    input.addEventListener("input", () => {
      dirty = true;
      input.classList.remove("invalid");
    });
  }
  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });
  window.addEventListener("resize", () => drawCanvas());
}

if (initShell()) {
  wire();
  load().catch((err) => toast(err.message, "error"));
}

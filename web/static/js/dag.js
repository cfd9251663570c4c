// Drawing a DAG workflow in SVG: a layered layout and the node/edge shapes.
//
// Layout (when nodes carry no `position`): longest-path layering over a topological
// order, dummy nodes on edges that skip layers, then a few barycenter sweeps to
// order each layer and cut crossings. Layers run left to right.

import { s } from "./ui.js";

export const NODE_TYPES = [
  { type: "start", label: "Start" },
  { type: "action", label: "Action" },
  { type: "condition", label: "Condition" },
  { type: "delay", label: "Delay" },
  { type: "fork", label: "Fork" },
  { type: "join", label: "Join" },
  { type: "transform", label: "Transform" },
  { type: "webhook_response", label: "Response" },
  { type: "end", label: "End" },
];

// 16x16 line icons (drawn, not font glyphs: air-gapped machines have few fonts).
const ICONS = {
  start: { d: "M4 2.5 L13.5 8 L4 13.5 Z", fill: true },
  end: { d: "M3.5 3.5 H12.5 V12.5 H3.5 Z", fill: true },
  action: { d: "M2 5 H13 M10 2 L13 5 L10 8 M14 11 H3 M6 8 L3 11 L6 14" },
  condition: { d: "M8 1.5 L14.5 8 L8 14.5 L1.5 8 Z" },
  delay: { d: "M8 2 A6 6 0 1 1 7.99 2 M8 4.5 V8 L10.5 10" },
  fork: { d: "M1.5 8 H6 L13 3 M6 8 L13 13 M10.5 2 L13 3 L12 5.5 M12 10.5 L13 13 L10.5 14" },
  join: { d: "M2 3 L8 8 L2 13 M8 8 H14.5 M12 5.5 L14.5 8 L12 10.5" },
  transform: { d: "M6 2 C4 2 4 3.5 4 5.5 C4 7 3.2 8 2 8 C3.2 8 4 9 4 10.5 C4 12.5 4 14 6 14 M10 2 C12 2 12 3.5 12 5.5 C12 7 12.8 8 14 8 C12.8 8 12 9 12 10.5 C12 12.5 12 14 10 14" },
  webhook_response: { d: "M6 3 L2 7 L6 11 M2 7 H10 C13 7 14 9 14 13" },
};

/** An icon for a node type as an SVG <path> (for use inside an <svg>). */
export function iconPath(type, attrs = {}) {
  const icon = ICONS[type] || { d: "M4 4 H12 V12 H4 Z" };
  return s("path", { d: icon.d, class: `icon${icon.fill ? " filled" : ""}`, ...attrs });
}

/** A standalone 16x16 <svg> icon (palette buttons). */
export function icon(type) {
  return s("svg", { class: "type-icon", width: 16, height: 16, viewBox: "0 0 16 16", "aria-hidden": "true" }, iconPath(type));
}

export const NODE_W = 156;
export const NODE_H = 48;
const GAP_X = 64;
const GAP_Y = 28;
const MARGIN = 24;
const SWEEPS = 8;

/** {id: {x, y}}: every node placed by layers (x) and barycenter order (y). */
export function layeredLayout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const known = new Set(ids);
  const succ = new Map(ids.map((id) => [id, []]));
  const pred = new Map(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (!known.has(e.source) || !known.has(e.target) || e.source === e.target) continue;
    succ.get(e.source).push(e.target);
    pred.get(e.target).push(e.source);
  }

  // Topological order (Kahn); a cycle, possible while editing, is broken at its first node.
  const indeg = new Map(ids.map((id) => [id, pred.get(id).length]));
  const queue = ids.filter((id) => indeg.get(id) === 0);
  const order = [];
  const seen = new Set();
  while (order.length < ids.length) {
    if (!queue.length) queue.push(ids.find((id) => !seen.has(id)));
    const id = queue.shift();
    if (seen.has(id)) continue;
    seen.add(id);
    order.push(id);
    for (const t of succ.get(id)) {
      indeg.set(t, indeg.get(t) - 1);
      if (indeg.get(t) <= 0 && !seen.has(t)) queue.push(t);
    }
  }
  const rank = new Map(order.map((id, i) => [id, i]));

  // Longest path from the sources: a node sits one layer right of its furthest predecessor.
  const layer = new Map();
  for (const id of order) {
    let l = 0;
    for (const p of pred.get(id)) if (rank.get(p) < rank.get(id)) l = Math.max(l, layer.get(p) + 1);
    layer.set(id, l);
  }

  // Forward edges only, split by dummy nodes so each link joins adjacent layers.
  const up = new Map(ids.map((id) => [id, []]));
  const down = new Map(ids.map((id) => [id, []]));
  const routes = new Map(); // edge key -> [source, dummies..., target]
  let dummies = 0;
  for (const e of edges) {
    if (!known.has(e.source) || !known.has(e.target)) continue;
    if (rank.get(e.source) >= rank.get(e.target)) continue;
    const chain = [e.source];
    for (let l = layer.get(e.source) + 1; l < layer.get(e.target); l++) {
      const d = `\u0000d${dummies++}`;
      layer.set(d, l);
      up.set(d, []);
      down.set(d, []);
      chain.push(d);
    }
    chain.push(e.target);
    for (let i = 0; i + 1 < chain.length; i++) {
      down.get(chain[i]).push(chain[i + 1]);
      up.get(chain[i + 1]).push(chain[i]);
    }
    routes.set(edgeKey(e), chain);
  }

  const layers = [];
  for (const [id, l] of layer) (layers[l] ||= []).push(id);
  for (let i = 0; i < layers.length; i++) layers[i] ||= [];
  const pos = new Map();
  const place = () => layers.forEach((ls) => ls.forEach((id, i) => pos.set(id, i)));
  place();
  const sortBy = (ls, neighbours) => {
    const bary = new Map();
    for (const id of ls) {
      const ns = neighbours.get(id);
      bary.set(id, ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length : pos.get(id));
    }
    ls.sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
    ls.forEach((id, i) => pos.set(id, i));
  };
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    if (sweep % 2 === 0) for (let l = 1; l < layers.length; l++) sortBy(layers[l], up);
    else for (let l = layers.length - 2; l >= 0; l--) sortBy(layers[l], down);
  }

  // Coordinates: layers are columns, each centred on the tallest one.
  const tallest = Math.max(1, ...layers.map((ls) => ls.length));
  const xy = {};
  const points = new Map();
  layers.forEach((ls, l) => {
    const offset = ((tallest - ls.length) * (NODE_H + GAP_Y)) / 2;
    ls.forEach((id, i) => {
      const p = { x: MARGIN + l * (NODE_W + GAP_X), y: MARGIN + offset + i * (NODE_H + GAP_Y) };
      points.set(id, p);
      if (known.has(id)) xy[id] = p;
    });
  });
  const bends = new Map();
  for (const [key, chain] of routes) {
    if (chain.length > 2) bends.set(key, chain.slice(1, -1).map((d) => points.get(d)));
  }
  return { positions: xy, bends };
}

export function edgeKey(e) {
  return `${e.source}\u0000${e.target}\u0000${e.when ?? ""}`;
}

/** Positions from the nodes' own `position` where present, the layered layout elsewhere. */
export function positionsFor(nodes, edges) {
  const all = nodes.every((n) => validPosition(n.position));
  if (all) return { positions: Object.fromEntries(nodes.map((n) => [n.id, { ...n.position }])), bends: new Map() };
  const auto = layeredLayout(nodes, edges);
  const some = nodes.some((n) => validPosition(n.position));
  if (!some) return auto;
  const positions = { ...auto.positions };
  for (const n of nodes) if (validPosition(n.position)) positions[n.id] = { ...n.position };
  return { positions, bends: new Map() };
}

function validPosition(p) {
  return p && Number.isFinite(p.x) && Number.isFinite(p.y);
}

/** Bounds of the drawing, with a margin. */
export function bounds(positions) {
  const ps = Object.values(positions);
  if (!ps.length) return { width: 400, height: 200 };
  return {
    width: Math.max(...ps.map((p) => p.x)) + NODE_W + MARGIN,
    height: Math.max(...ps.map((p) => p.y)) + NODE_H + MARGIN,
  };
}

/** An SVG path from the right side of `a` to the left side of `b`, through `via` points. */
export function edgePath(a, b, via = []) {
  const start = { x: a.x + NODE_W, y: a.y + NODE_H / 2 };
  const end = { x: b.x, y: b.y + NODE_H / 2 };
  const pts = [start, ...via.map((p) => ({ x: p.x + NODE_W / 2, y: p.y + NODE_H / 2 })), end];
  let d = `M${start.x},${start.y}`;
  for (let i = 1; i < pts.length; i++) {
    const p = pts[i - 1];
    const q = pts[i];
    // Backward edges (a cycle while editing) loop round instead of cutting through nodes.
    const bend = Math.max(40, Math.abs(q.x - p.x) / 2);
    d += ` C${p.x + bend},${p.y} ${q.x - bend},${q.y} ${q.x},${q.y}`;
  }
  return d;
}

export function pathMidpoint(path) {
  try {
    const len = path.getTotalLength();
    return path.getPointAtLength(len / 2);
  } catch {
    return { x: 0, y: 0 };
  }
}

/** The <defs> with arrow heads, one per colour class. */
export function arrowDefs() {
  const marker = (id) =>
    s(
      "marker",
      { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow ${id}` }),
    );
  return s("defs", {}, marker("arrow"), marker("arrow-taken"), marker("arrow-problem"));
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Draw `nodes` and `edges` into `svg` (its children are replaced).
 *
 * opts: positions, bends, statusOf(id), selectedNode, selectedEdge (edge object),
 * problemNodes (Map id -> count), problemEdges (Set of edge objects), takenEdge(e),
 * editable (adds ports), scale (zoom; coordinates stay the same), onSelect({kind, id|edge}).
 */
export function drawGraph(svg, nodes, edges, opts = {}) {
  const { positions = {}, bends = new Map(), statusOf, editable = false } = opts;
  const size = bounds(positions);
  const width = Math.max(size.width, opts.minWidth || 0);
  const height = Math.max(size.height, opts.minHeight || 0);
  const scale = opts.scale || 1;
  svg.setAttribute("width", Math.round(width * scale));
  svg.setAttribute("height", Math.round(height * scale));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren(arrowDefs());

  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  const nodeLayer = s("g", { class: "nodes" });
  svg.append(edgeLayer, labelLayer, nodeLayer);

  edges.forEach((e, index) => {
    const a = positions[e.source];
    const b = positions[e.target];
    if (!a || !b) return;
    const d = edgePath(a, b, bends.get(edgeKey(e)) || []);
    const classes = ["edge"];
    if (opts.selectedEdge === e) classes.push("selected");
    const problem = opts.problemEdges && opts.problemEdges.has(e);
    if (problem) classes.push("has-problem");
    const taken = opts.takenEdge ? opts.takenEdge(e) : null;
    if (taken === true) classes.push("taken");
    if (taken === false) classes.push("not-taken");
    const marker = problem ? "arrow-problem" : taken ? "arrow-taken" : "arrow";
    const g = s(
      "g",
      { class: classes.join(" "), "data-edge-index": index, "data-source": e.source, "data-target": e.target },
      s("title", {}, `${e.source} → ${e.target}${e.when ? ` (when ${e.when})` : ""}`),
      s("path", { class: "edge-hit", d }),
      s("path", { class: "edge-line", d, "marker-end": `url(#${marker})` }),
    );
    edgeLayer.append(g);
    if (e.when) {
      const mid = pathMidpoint(g.querySelector(".edge-line"));
      const w = e.when.length * 7 + 12;
      labelLayer.append(
        s(
          "g",
          { class: `edge-label when-${e.when}`, transform: `translate(${mid.x - w / 2},${mid.y - 9})`, "data-edge-index": index },
          s("rect", { width: w, height: 18, rx: 9 }),
          s("text", { x: w / 2, y: 13, "text-anchor": "middle" }, e.when),
        ),
      );
    }
  });

  for (const n of nodes) {
    const p = positions[n.id];
    if (!p) continue;
    const status = statusOf ? statusOf(n.id) : null;
    const classes = ["node", `type-${n.type}`];
    if (status) classes.push(`status-${status}`);
    if (opts.selectedNode === n.id) classes.push("selected");
    const problems = opts.problemNodes ? opts.problemNodes.get(n.id) || 0 : 0;
    if (problems) classes.push("has-problem");
    const title = n.label ? truncate(n.label, 18) : truncate(n.id, 18);
    const g = s(
      "g",
      {
        class: classes.join(" "),
        transform: `translate(${p.x},${p.y})`,
        "data-node-id": n.id,
        "data-status": status || undefined,
        tabindex: 0,
        role: "button",
        "aria-label": `${n.type} node ${n.id}${status ? `, ${status}` : ""}`,
      },
      s("title", {}, `${n.id} (${n.type})${status ? ` — ${status}` : ""}${n.label ? `\n${n.label}` : ""}`),
      s("rect", { class: "node-box", width: NODE_W, height: NODE_H, rx: 8 }),
      s("rect", { class: "node-strip", width: 6, height: NODE_H, rx: 3 }),
      s("g", { class: "node-icon", transform: `translate(12,${NODE_H / 2 - 8})` }, iconPath(n.type)),
      s("text", { class: "node-type", x: 34, y: 18 }, n.type === "webhook_response" ? "response" : n.type || "?"),
      s("text", { class: "node-id", x: 34, y: 35 }, title),
    );
    if (status) g.append(s("circle", { class: "node-status-dot", cx: NODE_W - 14, cy: 14, r: 5 }));
    if (problems) {
      g.append(
        s(
          "g",
          { class: "node-problem-badge", transform: `translate(${NODE_W - 10},-8)` },
          s("circle", { r: 10 }),
          s("text", { y: 4, "text-anchor": "middle" }, String(problems)),
        ),
      );
    }
    if (editable) {
      if (n.type !== "start") g.append(s("circle", { class: "port port-in", cx: 0, cy: NODE_H / 2, r: 5 }));
      if (n.type !== "end") {
        g.append(s("circle", { class: "port port-out", cx: NODE_W, cy: NODE_H / 2, r: 7, "data-port": "out" }, s("title", {}, "Drag to connect")));
      }
    }
    nodeLayer.append(g);
  }

  if (opts.onSelect) {
    svg.onclick = (event) => {
      const node = event.target.closest("[data-node-id]");
      if (node) return opts.onSelect({ kind: "node", id: node.dataset.nodeId });
      const edge = event.target.closest("[data-edge-index]");
      if (edge) return opts.onSelect({ kind: "edge", edge: edges[Number(edge.dataset.edgeIndex)] });
      return opts.onSelect(null);
    };
    svg.onkeydown = (event) => {
      const node = event.target.closest && event.target.closest("[data-node-id]");
      if (node && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        opts.onSelect({ kind: "node", id: node.dataset.nodeId });
      }
    };
  }
  return svg;
}

/** A scale that fits `positions` into `width` pixels, between `min` and 1. */
export function fitScale(positions, width, min = 0.55) {
  const b = bounds(positions);
  return Math.max(min, Math.min(1, width / b.width));
}

/** Nodes and edges of a definition, or null when it is not a DAG document. */
export function dagOf(definition) {
  if (!definition || !Array.isArray(definition.nodes)) return null;
  const nodes = definition.nodes.filter((n) => n && typeof n.id === "string");
  const edges = Array.isArray(definition.edges) ? definition.edges.filter((e) => e && e.source && e.target) : [];
  return { nodes, edges };
}

const SW_KINDS = ["call", "set", "wait", "switch", "fork", "for", "try", "emit", "listen", "raise", "run", "do"];

/**
 * The top-level tasks of a Serverless Workflow document as a chain start -> tasks -> end.
 * Node ids are the tasks' JSON pointers (`/do/0/greet`), as the engine names their steps.
 */
export function serverlessChain(definition) {
  if (!definition || !Array.isArray(definition.do)) return null;
  const nodes = [{ id: "start", type: "start" }];
  definition.do.forEach((item, i) => {
    const [name, task] = Object.entries(item || {})[0] || [`task${i}`, {}];
    const kind = SW_KINDS.find((k) => task && typeof task === "object" && k in task) || "task";
    nodes.push({ id: `/do/${i}/${name}`, type: kind, label: name });
  });
  nodes.push({ id: "end", type: "end" });
  const edges = nodes.slice(1).map((n, i) => ({ source: nodes[i].id, target: n.id }));
  return { nodes, edges };
}

// The editor's document: nodes and edges as plain objects, serialised back to the
// contract's DAG JSON, plus the 422 problems attached to the objects they name.

import { NODE_H, NODE_W, edgeKey, positionsFor } from "../dag.js";

const NODE_KEYS = ["id", "type", "label", "config", "retry"];

export class Doc {
  constructor() {
    this.nodes = [];
    this.edges = [];
    this.extra = {}; // top-level keys other than nodes/edges, kept as they were
    this.bends = new Map(); // edge key -> points, from the last automatic layout
    this.clearProblems();
  }

  /** Load a DAG definition; nodes without a position are laid out. */
  load(definition) {
    const { nodes = [], edges = [], ...extra } = definition || {};
    this.nodes = nodes.map((n) => structuredClone(n));
    this.edges = edges.map((e) => structuredClone(e));
    this.extra = structuredClone(extra);
    const { positions, bends } = positionsFor(this.nodes, this.edges);
    for (const n of this.nodes) n.position = roundPos(positions[n.id] || { x: 24, y: 24 });
    this.bends = bends;
    this.clearProblems();
  }

  /** The definition as the API takes it. */
  toDefinition() {
    return {
      nodes: this.nodes.map(nodeOut),
      edges: this.edges.map((e) => {
        const { source, target, when, ...rest } = e;
        const out = { source, target };
        if (when) out.when = when;
        return { ...out, ...rest };
      }),
      ...this.extra,
    };
  }

  /** Forget the routed bends of edges touching `nodeId` (it moved or was renamed). */
  dropBends(nodeId) {
    for (const e of this.edges) if (e.source === nodeId || e.target === nodeId) this.bends.delete(edgeKey(e));
  }

  node(id) {
    return this.nodes.find((n) => n.id === id);
  }

  uniqueId(base) {
    const stem = base.replace(/[^A-Za-z0-9_-]/g, "_") || "node";
    if (!this.node(stem)) return stem;
    for (let i = 2; ; i++) if (!this.node(`${stem}_${i}`)) return `${stem}_${i}`;
  }

  /** A free spot right of `after` (or right of everything), stepping down past overlaps. */
  freeSpot(after) {
    let x = 24;
    let y = 24;
    if (after) {
      x = after.position.x + NODE_W + 64;
      y = after.position.y;
    } else if (this.nodes.length) {
      x = Math.max(...this.nodes.map((n) => n.position.x)) + NODE_W + 64;
      y = Math.min(...this.nodes.map((n) => n.position.y));
    }
    while (this.nodes.some((n) => Math.abs(n.position.x - x) < NODE_W && Math.abs(n.position.y - y) < NODE_H + 8)) {
      y += NODE_H + 30;
    }
    return { x, y };
  }

  addNode(type, config, after) {
    const node = { id: this.uniqueId(type), type };
    if (config !== undefined) node.config = config;
    node.position = this.freeSpot(after);
    this.nodes.push(node);
    return node;
  }

  /** Add source -> target (when) unless it is a self-loop or already there; the edge or null. */
  addEdge(source, target, when) {
    if (!source || !target || source === target) return null;
    if (this.edges.some((e) => e.source === source && e.target === target && (e.when || "") === (when || ""))) return null;
    const edge = { source, target };
    if (when) edge.when = when;
    this.edges.push(edge);
    return edge;
  }

  /** The `when` a new edge out of a condition gets: "true" first, then "false". */
  nextWhen(sourceId) {
    const src = this.node(sourceId);
    if (!src || src.type !== "condition") return undefined;
    return this.edges.some((e) => e.source === sourceId && e.when === "true") ? "false" : "true";
  }

  removeNode(node) {
    this.nodes = this.nodes.filter((n) => n !== node);
    this.edges = this.edges.filter((e) => e.source !== node.id && e.target !== node.id);
  }

  removeEdge(edge) {
    this.edges = this.edges.filter((e) => e !== edge);
  }

  /** Rename a node, following its edges; an error message, or null when done. */
  rename(node, id) {
    if (!id) return "An id is required.";
    if (id !== node.id && this.node(id)) return `Another node is already called "${id}".`;
    this.dropBends(node.id);
    for (const e of this.edges) {
      if (e.source === node.id) e.source = id;
      if (e.target === node.id) e.target = id;
    }
    node.id = id;
    return null;
  }

  clearProblems() {
    this.problems = { byNode: new Map(), byEdge: new Map(), fields: [], general: [], all: [] };
  }

  /**
   * Attach 422 problems to what they name. Pointers index the nodes and edges as they
   * were sent (`sent`), so renames and deletions after sending do not misplace them.
   */
  setProblems(problems, sent) {
    this.clearProblems();
    const add = (map, key, p) => map.set(key, [...(map.get(key) || []), p]);
    for (const p of problems) {
      const pointer = (p.pointer || "").replace(/^\/definition(?=\/|$)/, "");
      const node = /^\/nodes\/(\d+)(\/|$)/.exec(pointer);
      const edge = /^\/edges\/(\d+)(\/|$)/.exec(pointer);
      const entry = { ...p, pointer };
      if (node && sent.nodes[Number(node[1])]) {
        entry.target = { kind: "node", node: sent.nodes[Number(node[1])] };
        add(this.problems.byNode, entry.target.node, entry);
      } else if (edge && sent.edges[Number(edge[1])]) {
        entry.target = { kind: "edge", edge: sent.edges[Number(edge[1])] };
        add(this.problems.byEdge, entry.target.edge, entry);
      } else if (p.node_id && sent.nodes.find((n) => n.id === p.node_id)) {
        entry.target = { kind: "node", node: sent.nodes.find((n) => n.id === p.node_id) };
        add(this.problems.byNode, entry.target.node, entry);
      } else if (/^\/(name|description)$/.test(p.pointer || "")) {
        this.problems.fields.push(entry);
      } else {
        this.problems.general.push(entry);
      }
      this.problems.all.push(entry);
    }
  }

  /** {id: count} of problems per node still in the document. */
  problemCounts() {
    const counts = new Map();
    for (const [node, list] of this.problems.byNode) if (this.nodes.includes(node)) counts.set(node.id, list.length);
    return counts;
  }
}

function roundPos(p) {
  return { x: Math.round(p.x), y: Math.round(p.y) };
}

function nodeOut(n) {
  const out = {};
  for (const key of NODE_KEYS) {
    const value = n[key];
    if (value === undefined || value === null || value === "") continue;
    if (key === "config" && typeof value === "object" && !Object.keys(value).length) continue;
    out[key] = value;
  }
  for (const [key, value] of Object.entries(n)) {
    if (!NODE_KEYS.includes(key) && key !== "position") out[key] = value;
  }
  out.position = roundPos(n.position || { x: 0, y: 0 });
  return out;
}

// Layout and serverless-chain tests for web/static/js/dag.js (run: node --test tests/web/js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { NODE_H, NODE_W, edgeKey, layeredLayout, positionsFor, serverlessChain } from "../../../web/static/js/dag.js";

const n = (id, extra = {}) => ({ id, type: "transform", ...extra });
const e = (source, target, when) => (when ? { source, target, when } : { source, target });

function overlaps(p, q) {
  return Math.abs(p.x - q.x) < NODE_W && Math.abs(p.y - q.y) < NODE_H;
}

test("layers follow the longest path from the start", () => {
  const nodes = ["s", "a", "b", "c", "end"].map((id) => n(id));
  const edges = [e("s", "a"), e("a", "b"), e("b", "end"), e("s", "c"), e("c", "end")];
  const { positions } = layeredLayout(nodes, edges);
  const x = (id) => positions[id].x;
  assert.ok(x("s") < x("a") && x("a") < x("b") && x("b") < x("end"));
  assert.equal(x("c"), x("a"));
  assert.ok(x("end") > x("b"), "end sits after the longest branch");
});

test("no two nodes overlap", () => {
  const nodes = Array.from({ length: 12 }, (_, i) => n(`n${i}`));
  const edges = [];
  for (let i = 1; i < 12; i++) edges.push(e("n0", `n${i}`));
  const { positions } = layeredLayout(nodes, edges);
  const ps = Object.values(positions);
  for (let i = 0; i < ps.length; i++) for (let j = i + 1; j < ps.length; j++) assert.ok(!overlaps(ps[i], ps[j]));
});

test("barycenter ordering untangles a crossed pair", () => {
  // a1 -> b2 and a2 -> b1 declared crosswise: the second layer is reordered to match.
  const nodes = ["r", "a1", "a2", "b1", "b2"].map((id) => n(id));
  const edges = [e("r", "a1"), e("r", "a2"), e("a1", "b2"), e("a2", "b1")];
  const { positions: p } = layeredLayout(nodes, edges);
  assert.equal(Math.sign(p.a1.y - p.a2.y), Math.sign(p.b2.y - p.b1.y));
});

test("edges that skip layers are routed through bends", () => {
  const nodes = ["s", "a", "b", "end"].map((id) => n(id));
  const long = e("s", "end", undefined);
  const { bends } = layeredLayout(nodes, [e("s", "a"), e("a", "b"), e("b", "end"), long]);
  assert.equal(bends.get(edgeKey(long)).length, 2);
});

test("a cycle while editing does not hang or lose nodes", () => {
  const nodes = ["a", "b", "c"].map((id) => n(id));
  const { positions } = layeredLayout(nodes, [e("a", "b"), e("b", "c"), e("c", "a")]);
  assert.deepEqual(Object.keys(positions).sort(), ["a", "b", "c"]);
});

test("stored positions win; only nodes without one are laid out", () => {
  const all = positionsFor([n("a", { position: { x: 500, y: 40 } }), n("b", { position: { x: 10, y: 10 } })], [e("a", "b")]);
  assert.deepEqual(all.positions.a, { x: 500, y: 40 });
  const some = positionsFor([n("a", { position: { x: 500, y: 40 } }), n("b")], [e("a", "b")]);
  assert.deepEqual(some.positions.a, { x: 500, y: 40 });
  assert.ok(Number.isFinite(some.positions.b.x));
});

test("a large graph lays out quickly", () => {
  const nodes = Array.from({ length: 2000 }, (_, i) => n(`n${i}`));
  const edges = nodes.slice(1).map((node, i) => e(`n${Math.floor(i / 3)}`, node.id));
  const started = Date.now();
  const { positions } = layeredLayout(nodes, edges);
  assert.equal(Object.keys(positions).length, 2000);
  assert.ok(Date.now() - started < 3000);
});

test("a Serverless Workflow document is drawn as a chain of its top-level tasks", () => {
  const chain = serverlessChain({ do: [{ greet: { set: { a: 1 } } }, { pause: { wait: { seconds: 1 } } }] });
  assert.deepEqual(chain.nodes.map((x) => x.id), ["start", "/do/0/greet", "/do/1/pause", "end"]);
  assert.deepEqual(chain.nodes.map((x) => x.type), ["start", "set", "wait", "end"]);
  assert.equal(chain.edges.length, 3);
  assert.equal(serverlessChain({ nodes: [] }), null);
});

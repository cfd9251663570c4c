// The editor's document model: web/static/js/editor/model.js and forms.js.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Doc } from "../../../web/static/js/editor/model.js";
import { fieldText, fieldValue } from "../../../web/static/js/editor/forms.js";

const DEF = {
  nodes: [
    { id: "start", type: "start" },
    { id: "check", type: "condition", config: { expression: "true" }, retry: { max_attempts: 2 } },
    { id: "end", type: "end", custom: "kept" },
  ],
  edges: [
    { source: "start", target: "check" },
    { source: "check", target: "end", when: "true" },
  ],
  meta: { owner: "ops" },
};

test("a loaded definition saves back with positions and nothing lost", () => {
  const doc = new Doc();
  doc.load(DEF);
  const out = doc.toDefinition();
  assert.deepEqual(out.meta, { owner: "ops" });
  assert.deepEqual(out.edges, DEF.edges);
  for (const [i, node] of out.nodes.entries()) {
    const { position, ...rest } = node;
    assert.deepEqual(rest, DEF.nodes[i]);
    assert.ok(Number.isInteger(position.x) && Number.isInteger(position.y));
  }
  assert.equal(DEF.nodes[0].position, undefined, "the input is not mutated");
});

test("renaming a node follows its edges; duplicates and blanks are refused", () => {
  const doc = new Doc();
  doc.load(DEF);
  assert.equal(doc.rename(doc.node("check"), "end"), 'Another node is already called "end".');
  assert.equal(doc.rename(doc.node("check"), ""), "An id is required.");
  assert.equal(doc.rename(doc.node("check"), "is_vip"), null);
  assert.deepEqual(doc.toDefinition().edges.map((x) => [x.source, x.target]), [["start", "is_vip"], ["is_vip", "end"]]);
});

test("new nodes get unique ids and a free spot; edges out of a condition alternate when", () => {
  const doc = new Doc();
  doc.load(DEF);
  const a = doc.addNode("end", undefined, doc.node("check"));
  assert.equal(a.id, "end_2");
  assert.ok(!doc.nodes.some((other) => other !== a && other.position.x === a.position.x && other.position.y === a.position.y));
  assert.equal(doc.nextWhen("check"), "false");
  assert.ok(doc.addEdge("check", "end_2", "false"));
  assert.equal(doc.addEdge("check", "end_2", "false"), null, "no duplicate edge");
  assert.equal(doc.addEdge("end", "end", undefined), null, "no self-loop");
  doc.removeNode(doc.node("check"));
  assert.deepEqual(doc.edges, []);
});

test("422 problems land on the node or edge their pointer names, as sent", () => {
  const doc = new Doc();
  doc.load(DEF);
  const sent = { nodes: [...doc.nodes], edges: [...doc.edges] };
  doc.setProblems(
    [
      { pointer: "/definition/nodes/1/config/expression", message: "bad jq", node_id: "check" },
      { pointer: "/definition/edges/1/when", message: "bad when" },
      { pointer: "/definition/nodes", message: "no end node" },
      { pointer: "/name", message: "required" },
    ],
    sent,
  );
  doc.rename(doc.node("check"), "renamed"); // renaming after sending keeps the problem on it
  assert.deepEqual([...doc.problemCounts()], [["renamed", 1]]);
  assert.equal(doc.problems.byEdge.get(doc.edges[1])[0].message, "bad when");
  assert.deepEqual(doc.problems.general.map((p) => p.message), ["no end node"]);
  assert.deepEqual(doc.problems.fields.map((p) => p.pointer), ["/name"]);
  assert.equal(doc.problems.all.length, 4);
});

test("form fields read JSON, keep template strings and refuse broken JSON", () => {
  const json = { kind: "json" };
  assert.deepEqual(fieldValue(json, '{"a": 1}'), { a: 1 });
  assert.equal(fieldValue(json, "${ .input.name }"), "${ .input.name }");
  assert.throws(() => fieldValue(json, '{"a": '));
  assert.equal(fieldValue(json, "  "), undefined);
  assert.equal(fieldValue({ kind: "number" }, "2.5"), 2.5);
  assert.throws(() => fieldValue({ kind: "number" }, "two"));
  assert.equal(fieldText(json, "x"), '"x"');
});

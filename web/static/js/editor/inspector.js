// The editor's right-hand panel: the selected node (id, label, config as form fields
// and as JSON, retry, edges) or the selected edge (`when`), with their problems.
//
// Fields write to the document on every keystroke, so nothing is lost when the
// selection changes; the canvas redraws, the panel itself only when told to.

import { NODE_TYPES } from "../dag.js";
import { h, mount } from "../ui.js";
import { WORK_TYPES, fieldText, fieldValue, fieldsFor } from "./forms.js";

let uid = 0;
const fid = () => `insp-${++uid}`;

/**
 * hooks: changed({inspector}) after an edit, select(selection), remove(selection).
 */
export function renderInspector(box, doc, selection, hooks) {
  if (!selection) return mount(box, emptyPanel(doc));
  if (selection.kind === "edge") return mount(box, edgePanel(doc, selection.edge, hooks));
  return mount(box, nodePanel(doc, selection.node, hooks));
}

function emptyPanel(doc) {
  return [
    h("h2", {}, "Inspector"),
    h("p", { class: "muted" }, doc.nodes.length ? "Select a node or an edge to edit it." : "Start with a Start node from the palette, then add steps: each new node is connected from the selected one."),
  ];
}

function problemsOf(list) {
  if (!list || !list.length) return null;
  return h(
    "div",
    { class: "alert error", role: "alert", "data-inspector-problems": "" },
    h("strong", {}, list.length === 1 ? "1 problem" : `${list.length} problems`),
    h("ul", {}, list.map((p) => h("li", {}, p.message, p.pointer ? h("code", { class: "pointer" }, ` ${p.pointer}`) : null))),
  );
}

function field(label, control, { help, error } = {}) {
  const id = control.id || (control.id = fid());
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    help ? h("p", { class: "help" }, help) : null,
    error || null,
  );
}

function errorSlot() {
  return h("p", { class: "field-error", role: "alert", hidden: true });
}

function showError(slot, message) {
  slot.textContent = message || "";
  slot.hidden = !message;
}

function nodePanel(doc, node, hooks) {
  const typeInfo = NODE_TYPES.find((t) => t.type === node.type);
  const refreshers = []; // re-read fields from the model after another field changed them
  const sync = (except) => refreshers.forEach((r) => r.el !== except && r.refresh());

  const idInput = h("input", { value: node.id, "data-field": "id", autocomplete: "off", spellcheck: "false" });
  const idError = errorSlot();
  idInput.addEventListener("input", () => {
    const message = doc.rename(node, idInput.value.trim());
    showError(idError, message);
    if (!message) hooks.changed({ inspector: false });
  });

  const labelInput = h("input", { value: node.label || "", "data-field": "label", autocomplete: "off" });
  labelInput.addEventListener("input", () => {
    node.label = labelInput.value || undefined;
    hooks.changed({ inspector: false });
  });

  const configFields = fieldsFor(node.type).map((spec) => {
    const control =
      spec.kind === "select"
        ? h("select", { "data-config": spec.key }, spec.options.map((o) => h("option", { value: o }, o)))
        : spec.kind === "text" || spec.kind === "number"
          ? h("input", { "data-config": spec.key, type: spec.kind === "number" ? "number" : "text", step: "any", placeholder: spec.placeholder, autocomplete: "off", spellcheck: "false" })
          : h("textarea", { "data-config": spec.key, rows: spec.kind === "json" ? 3 : 2, class: "code", placeholder: spec.placeholder, spellcheck: "false" });
    const slot = errorSlot();
    const refresh = () => {
      control.value = fieldText(spec, node.config?.[spec.key]);
    };
    refresh();
    control.addEventListener("input", () => {
      try {
        const value = fieldValue(spec, control.value);
        node.config = { ...(node.config || {}) };
        if (value === undefined) delete node.config[spec.key];
        else node.config[spec.key] = value;
        showError(slot, "");
        sync(control);
        hooks.changed({ inspector: false });
      } catch (err) {
        showError(slot, err.message);
      }
    });
    refreshers.push({ el: control, refresh });
    return field(spec.label, control, { help: spec.help, error: slot });
  });

  const jsonArea = (key, label, help, placeholder) => {
    const area = h("textarea", { class: "code", rows: 5, "data-json": key, spellcheck: "false", placeholder });
    const slot = errorSlot();
    const refresh = () => {
      area.value = node[key] === undefined ? "" : JSON.stringify(node[key], null, 2);
    };
    refresh();
    area.addEventListener("input", () => {
      const text = area.value.trim();
      try {
        const value = text ? JSON.parse(text) : undefined;
        if (value !== undefined && (typeof value !== "object" || Array.isArray(value) || value === null)) throw new Error("must be a JSON object");
        node[key] = value;
        showError(slot, "");
        sync(area);
        hooks.changed({ inspector: false });
      } catch (err) {
        showError(slot, err instanceof SyntaxError ? `Not valid JSON yet: ${err.message}` : err.message);
      }
    });
    refreshers.push({ el: area, refresh });
    return h(
      "details",
      { class: "json-details", open: key === "retry" && node.retry !== undefined },
      h("summary", {}, label),
      field(`${label} (JSON object)`, area, { help, error: slot }),
    );
  };

  return [
    h("h2", {}, h("span", { class: "tag" }, typeInfo ? typeInfo.label : node.type), " ", node.id),
    problemsOf(doc.problems.byNode.get(node)),
    field("Id", idInput, { error: idError }),
    field("Label", labelInput, { help: "Shown on the canvas; the engine ignores it." }),
    configFields.length ? h("fieldset", { class: "config-form" }, h("legend", {}, "Config"), configFields) : null,
    node.type === "start" || node.type === "fork" || node.type === "join" ? null : jsonArea("config", "Config as JSON", "The same config as one JSON object: edit either."),
    WORK_TYPES.has(node.type)
      ? jsonArea("retry", "Retry", "Attempts and backoff; empty uses the defaults.", '{"max_attempts": 3, "initial_seconds": 1,\n "multiplier": 2, "max_seconds": 60, "jitter": true}')
      : null,
    edgeList(doc, node, hooks),
    h("div", { class: "inspector-actions" }, h("button", { class: "btn danger", type: "button", onclick: () => hooks.remove({ kind: "node", node }) }, "Delete node")),
  ];
}

function whenSelect(value, attrs = {}) {
  return h(
    "select",
    { ...attrs },
    h("option", { value: "" }, "(always)"),
    h("option", { value: "true" }, "when true"),
    h("option", { value: "false" }, "when false"),
  );
}

function edgeList(doc, node, hooks) {
  const outgoing = doc.edges.filter((e) => e.source === node.id);
  const incoming = doc.edges.filter((e) => e.target === node.id);
  const isCondition = node.type === "condition";
  const rows = outgoing.map((e) => {
    const when = whenSelect(e.when || "", { "aria-label": `when for edge to ${e.target}` });
    when.value = e.when || "";
    when.addEventListener("change", () => {
      e.when = when.value || undefined;
      hooks.changed({ inspector: false });
    });
    return h(
      "li",
      { class: doc.problems.byEdge.has(e) ? "has-problem" : "" },
      "→ ",
      h("button", { class: "link", type: "button", onclick: () => hooks.select({ kind: "node", node: doc.node(e.target) }) }, e.target),
      isCondition || e.when ? when : null,
      h("button", { class: "btn small ghost", type: "button", title: "Remove edge", "aria-label": `Remove edge to ${e.target}`, onclick: () => hooks.remove({ kind: "edge", edge: e }) }, "✕"),
    );
  });

  const others = doc.nodes.filter((n) => n !== node && n.type !== "start");
  const target = h("select", { "data-connect-target": "", "aria-label": "Connect to" }, others.map((n) => h("option", { value: n.id }, n.id)));
  // Offer first a node that nothing reaches yet, after this one in the document.
  const after = doc.nodes.slice(doc.nodes.indexOf(node) + 1);
  const suggested = after.find((n) => n.type !== "start" && !doc.edges.some((e) => e.target === n.id)) || others.find((n) => !outgoing.some((e) => e.target === n.id));
  if (suggested) target.value = suggested.id;
  const when = whenSelect(doc.nextWhen(node.id) || "", { "data-connect-when": "", "aria-label": "When" });
  when.value = doc.nextWhen(node.id) || "";
  const add = h("button", {
    class: "btn small",
    type: "button",
    "data-connect-add": "",
    onclick: () => {
      if (doc.addEdge(node.id, target.value, when.value || undefined)) hooks.changed({ inspector: true });
    },
  }, "Connect");

  return h(
    "fieldset",
    { class: "edge-list" },
    h("legend", {}, "Edges"),
    incoming.length ? h("p", { class: "small muted" }, "From: ", incoming.map((e, i) => [i ? ", " : "", h("code", {}, e.source)])) : null,
    rows.length ? h("ul", {}, rows) : h("p", { class: "small muted" }, "No outgoing edges."),
    node.type !== "end" && others.length ? h("div", { class: "connect-row" }, target, isCondition ? when : null, add) : null,
  );
}

function edgePanel(doc, edge, hooks) {
  const source = doc.node(edge.source);
  const when = whenSelect(edge.when || "", { id: fid(), "data-field": "when" });
  when.value = edge.when || "";
  when.addEventListener("change", () => {
    edge.when = when.value || undefined;
    hooks.changed({ inspector: false });
  });
  const conditional = source && source.type === "condition";
  return [
    h("h2", {}, "Edge"),
    problemsOf(doc.problems.byEdge.get(edge)),
    h(
      "p",
      {},
      h("button", { class: "link", type: "button", onclick: () => hooks.select({ kind: "node", node: source }) }, edge.source),
      " → ",
      h("button", { class: "link", type: "button", onclick: () => hooks.select({ kind: "node", node: doc.node(edge.target) }) }, edge.target),
    ),
    conditional || edge.when
      ? field("When", when, { help: conditional ? "Taken when the condition's result matches." : "Only edges out of a condition may have `when`." })
      : h("p", { class: "small muted" }, "Always taken once the source succeeds."),
    h("div", { class: "inspector-actions" }, h("button", { class: "btn danger", type: "button", onclick: () => hooks.remove({ kind: "edge", edge }) }, "Delete edge")),
  ];
}

// Queues: ready, unacked and dead-lettered messages per queue, refreshed every 2 s.

import { optional } from "../api.js";
import { queuesOf } from "../normalize.js";
import { $, errorBox, h, initShell, mount, notAvailable, poll, prettyJson, table } from "../ui.js";

function bar(value, max, kind) {
  const el = h("span", { class: `meter ${kind}` }, h("span", {}));
  el.firstChild.style.width = `${max ? Math.min(100, (100 * (value || 0)) / max) : 0}%`;
  return el;
}

async function refresh() {
  const box = $("[data-queues]");
  try {
    const data = await optional("/api/queue");
    if (!data) {
      mount(box, notAvailable("The queue API"));
      return;
    }
    const rows = queuesOf(data);
    const max = Math.max(1, ...rows.flatMap((q) => [q.ready || 0, q.unacked || 0, q.dead || 0]));
    const cell = (key, kind) => (q) => (q[key] === null ? h("span", { class: "muted" }, "—") : h("span", { class: "meter-cell" }, bar(q[key], max, kind), h("span", { class: "num" }, String(q[key]))));
    mount(
      box,
      table(
        [
          { label: "Queue", cell: (q) => h("code", {}, q.name) },
          { label: "Ready", cell: cell("ready", "ready") },
          { label: "Unacked", cell: cell("unacked", "unacked") },
          { label: "Dead-lettered", cell: cell("dead", "dead") },
          { label: "Consumers", cell: (q) => (q.consumers === null ? "—" : String(q.consumers)), class: "num" },
          { label: "Dead-letter queue", cell: (q) => (q.deadQueue ? h("code", {}, q.deadQueue) : h("span", { class: "muted" }, q.deadRows === null ? "—" : `${q.deadRows} row${q.deadRows === 1 ? "" : "s"} (no broker queue)`)) },
          {
            label: "Counted by",
            cell: (q) =>
              q.source ? h("span", { class: "small muted" }, Object.entries(q.source).map(([k, v]) => `${k.replace("_", " ")}: ${v === "database" ? "db" : v.replace("_", " ")}`).join(" · ")) : "",
          },
        ],
        rows,
        { empty: "The broker reports no queues." },
      ),
      h("details", { class: "raw" }, h("summary", {}, "Raw response"), h("pre", { class: "json" }, prettyJson(data))),
    );
    const broker = data.broker ? `${data.broker} broker · ` : "";
    $("[data-updated]").textContent = `${broker}updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function throughput() {
  const box = $("[data-throughput]");
  try {
    const metrics = await optional("/api/observability/metrics");
    const data = metrics && (metrics.queue_throughput ?? metrics.throughput ?? metrics.queues);
    if (!data) return mount(box, notAvailable("Queue throughput"));
    if (typeof data === "object" && !Array.isArray(data) && Object.values(data).every((v) => typeof v === "number")) {
      return mount(box, h("dl", { class: "kv" }, Object.entries(data).map(([k, v]) => [h("dt", {}, k.replaceAll("_", " ")), h("dd", {}, String(v))])));
    }
    mount(box, h("pre", { class: "json" }, prettyJson(data)));
  } catch (err) {
    mount(box, errorBox(err));
  }
}

if (initShell()) {
  poll(refresh, 2000);
  poll(throughput, 10000);
}

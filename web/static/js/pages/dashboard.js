// Dashboard: executions by status, recent executions, queues, beat/heartbeats, health.

import { api, optional } from "../api.js";
import { executionCountsOf, latenciesOf, queuesOf, schedulerOf } from "../normalize.js";
import {
  $,
  EXECUTION_STATUSES,
  durationBetween,
  errorBox,
  fmtAgo,
  fmtDuration,
  fmtTime,
  h,
  idLink,
  initShell,
  mount,
  notAvailable,
  poll,
  statusBadge,
  table,
} from "../ui.js";

let metrics = null; // the last metrics snapshot, shared by two panels

if (initShell()) {
  let names = new Map();
  poll(async () => {
    if (!names.size) names = await workflowNames();
    await Promise.all([counts(), recent(names), queues(), heartbeats(), health(), deadLetters()]);
  }, 5000);
}

async function workflowNames() {
  try {
    const page = await api("/api/workflows", { query: { limit: 200 } });
    return new Map(page.items.map((w) => [w.id, w.name]));
  } catch {
    return new Map();
  }
}

async function counts() {
  const box = $("[data-status-counts]");
  try {
    metrics = await optional("/api/observability/metrics");
    let byStatus = executionCountsOf(metrics);
    let note = "all time";
    if (!byStatus) {
      // No metrics route: count the most recent executions instead.
      const page = await api("/api/executions", { query: { limit: 200 } });
      byStatus = {};
      for (const e of page.items) byStatus[e.status] = (byStatus[e.status] || 0) + 1;
      note = page.next_cursor ? "last 200" : "all";
    }
    mount(
      box,
      EXECUTION_STATUSES.map((status) =>
        h(
          "a",
          { class: `stat status-${status}`, href: `/executions?status=${status}` },
          h("span", { class: "stat-value" }, String(byStatus[status] ?? 0)),
          h("span", { class: "stat-label" }, status),
        ),
      ),
      h("p", { class: "stat-note muted small" }, `executions, ${note}`),
    );
    latency();
  } catch (err) {
    mount(box, errorBox(err));
  }
}

function latency() {
  const box = $("[data-latency]");
  const rows = latenciesOf(metrics);
  if (!metrics) return mount(box, notAvailable("The metrics snapshot"));
  if (!rows.length) return mount(box, h("p", { class: "empty" }, "No step latencies yet."));
  mount(
    box,
    table(
      [
        { label: "Steps", cell: (r) => r.label },
        { label: "p50", cell: (r) => fmtDuration(r.p50), class: "num" },
        { label: "p95", cell: (r) => fmtDuration(r.p95), class: "num" },
        { label: "p99", cell: (r) => fmtDuration(r.p99), class: "num" },
      ],
      rows,
    ),
  );
}

async function recent(names) {
  const box = $("[data-recent]");
  try {
    const page = await api("/api/executions", { query: { limit: 12 } });
    mount(
      box,
      table(
        [
          { label: "Status", cell: (e) => statusBadge(e.status) },
          { label: "Execution", cell: (e) => idLink(`/executions/${e.id}`, e.id) },
          {
            label: "Workflow",
            cell: (e) => h("a", { href: `/workflows/${e.workflow_id}` }, names.get(e.workflow_id) || e.workflow_id.slice(0, 8)),
          },
          { label: "Started", cell: (e) => fmtTime(e.started_at || e.created_at) },
          { label: "Duration", cell: (e) => fmtDuration(durationBetween(e.started_at, e.finished_at)), class: "num" },
        ],
        page.items,
        { empty: "No executions yet: open a workflow and press Start execution." },
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function queues() {
  const box = $("[data-queues]");
  try {
    const data = await optional("/api/queue");
    if (!data) return mount(box, notAvailable("Queue depth"));
    const rows = queuesOf(data);
    mount(
      box,
      table(
        [
          { label: "Queue", cell: (q) => h("code", {}, q.name) },
          { label: "Ready", cell: (q) => q.ready ?? "—", class: "num" },
          { label: "Unacked", cell: (q) => q.unacked ?? "—", class: "num" },
          { label: "Dead", cell: (q) => q.dead ?? "—", class: "num" },
        ],
        rows,
        { empty: "No queues reported." },
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function heartbeats() {
  const box = $("[data-heartbeats]");
  try {
    const status = schedulerOf(await optional("/api/scheduler/status"));
    if (!status) return mount(box, notAvailable("Scheduler status"));
    const beat =
      status.beatAlive === null
        ? h("span", { class: "muted" }, "unknown")
        : h("span", { class: `badge ${status.beatAlive ? "status-succeeded" : "status-failed"}` }, status.beatAlive ? "alive" : "down");
    mount(
      box,
      h("dl", { class: "kv" }, h("dt", {}, "Beat"), h("dd", {}, beat), h("dt", {}, "Last tick"), h("dd", {}, fmtAgo(status.lastTick))),
      table(
        [
          { label: "Process", cell: (b) => h("code", {}, b.name || b.hostname || b.id || "?") },
          { label: "Kind", cell: (b) => b.kind || "" },
          { label: "Last seen", cell: (b) => fmtAgo(b.last_seen || b.last_heartbeat) },
        ],
        status.heartbeats,
        { empty: "No heartbeats reported (workers are watched in Flower)." },
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function health() {
  const box = $("[data-health]");
  try {
    // Plain JSON even when 503, so read it with fetch rather than api().
    const response = await fetch("/api/health", { cache: "no-store" });
    const data = await response.json();
    mount(
      box,
      h(
        "dl",
        { class: "kv" },
        Object.entries(data.checks || {}).flatMap(([name, value]) => [
          h("dt", {}, name.replace("_", " ")),
          h("dd", {}, h("span", { class: `badge ${String(value).startsWith("ok") ? "status-succeeded" : "status-failed"}` }, value)),
        ]),
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function deadLetters() {
  const box = $("[data-dead-count]");
  try {
    const page = await optional("/api/dead-letters", { query: { status: "dead", limit: 100 } });
    if (!page) return mount(box, "(not available)");
    const n = page.items.length;
    mount(box, n ? h("span", { class: "error-text" }, `${n}${page.next_cursor ? "+" : ""} waiting`) : "none waiting");
  } catch {
    mount(box);
  }
}

// Tolerant readers for routes whose exact shape may still change (queue, scheduler,
// metrics): they pick out what the pages show and ignore the rest.

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function firstNum(obj, ...names) {
  for (const name of names) {
    const v = num(obj?.[name]);
    if (v !== null) return v;
  }
  return null;
}

/** [{name, ready, unacked, dead, consumers}] from /api/queue. */
export function queuesOf(data) {
  if (!data) return [];
  let entries = [];
  const list = Array.isArray(data) ? data : Array.isArray(data.items) ? data.items : Array.isArray(data.queues) ? data.queues : null;
  if (list) entries = list.map((q) => [q.name ?? q.queue ?? "?", q]);
  else {
    const obj = data.queues && typeof data.queues === "object" ? data.queues : data;
    entries = Object.entries(obj).filter(([, v]) => v && typeof v === "object" && !Array.isArray(v));
  }
  return entries.map(([name, q]) => ({
    name,
    ready: firstNum(q, "ready", "messages_ready", "messages"),
    unacked: firstNum(q, "unacked", "messages_unacknowledged"),
    dead: firstNum(q, "dead", "dead_lettered", "dead_letters", "dlq"),
    consumers: firstNum(q, "consumers", "consumer_count"),
    deadQueue: q.dead_letter_queue ?? null,
    deadRows: firstNum(q, "dead_letter_rows"),
    source: q.source && typeof q.source === "object" ? q.source : null,
  }));
}

/** {pending: n, running: n, ...} from /api/observability/metrics, or null. */
export function executionCountsOf(metrics) {
  if (!metrics) return null;
  const candidates = [
    metrics.executions_by_status,
    metrics.executions?.by_status,
    metrics.executions,
  ];
  for (const c of candidates) {
    if (c && typeof c === "object" && !Array.isArray(c) && Object.values(c).some((v) => typeof v === "number")) return c;
  }
  return null;
}

/** [{label, p50, p95, p99, count}] of step latencies from the metrics snapshot. */
export function latenciesOf(metrics) {
  const raw = metrics?.step_latency_ms ?? metrics?.step_latency ?? metrics?.steps?.latency_ms ?? metrics?.latency;
  if (!raw || typeof raw !== "object") return [];
  const row = (label, v) => ({
    label,
    p50: firstNum(v, "p50", "p50_ms", "median"),
    p95: firstNum(v, "p95", "p95_ms"),
    p99: firstNum(v, "p99", "p99_ms"),
    count: firstNum(v, "count", "n"),
  });
  if (firstNum(raw, "p50", "p50_ms", "p95", "p95_ms") !== null) return [row("all steps", raw)];
  const source = raw.by_type && typeof raw.by_type === "object" ? raw.by_type : raw;
  return Object.entries(source)
    .filter(([, v]) => v && typeof v === "object")
    .map(([k, v]) => row(k, v));
}

/** {beatAlive, lastTick, triggers: [{id, workflow_id, cron, next_fire_at}], heartbeats: [...]}. */
export function schedulerOf(data) {
  if (!data) return null;
  const beat = data.beat && typeof data.beat === "object" ? data.beat : data;
  const alive = beat.alive ?? beat.beat_alive ?? data.beat_alive ?? (typeof data.beat === "boolean" ? data.beat : null);
  const lastTick = beat.last_tick ?? beat.last_seen ?? data.last_tick ?? null;
  const triggers = data.triggers ?? data.cron_triggers ?? data.next_fire_times ?? [];
  const instances = Array.isArray(beat.instances) ? beat.instances.map((i) => ({ kind: "beat", ...i })) : null;
  const beats = data.heartbeats ?? data.workers ?? beat.heartbeats ?? instances ?? [];
  return {
    beatAlive: typeof alive === "boolean" ? alive : null,
    lastTick,
    triggers: Array.isArray(triggers)
      ? triggers
      : Object.entries(triggers).map(([id, next]) => ({ id, next_fire_at: next })),
    heartbeats: Array.isArray(beats)
      ? beats
      : Object.entries(beats).map(([name, v]) => ({ name, ...(typeof v === "object" ? v : { last_seen: v }) })),
  };
}

"""/api/observability: what happened, for the current user.

Only the audit log lives here for now; the metrics snapshot
(GET /api/observability/metrics) is to be added to this blueprint below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.errors import InvalidInput, Problem
from models import AuditLog

from .. import audit
from ..auth import current_user_id
from ..bodies import query_arg, query_problem
from ..db import get_session
from ..openapi import responses, spec
from ..pagination import PageQuery, page_args, paginate

bp = Blueprint("observability", __name__)

TAGS = ["observability"]


class AuditQuery(PageQuery):
    """Query of GET /api/observability/audit."""

    action: str | None = Field(
        None, description="e.g. workflow.create, workflow.update, workflow.delete"
    )
    entity_id: str | None = None
    since: datetime | None = Field(None, description="ISO 8601; entries at or after")
    until: datetime | None = Field(None, description="ISO 8601; entries before")


class AuditEntry(BaseModel):
    """Who did what to which entity, and when."""

    id: int
    action: str
    entity_type: str
    entity_id: str | None
    detail: dict[str, Any] | None
    created_at: datetime


class AuditPage(BaseModel):
    """One page of audit entries, newest first."""

    items: list[AuditEntry]
    next_cursor: str | None


def _time_arg(name: str, problems: list[Problem]) -> datetime | None:
    raw = query_arg(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))  # a raw '+' in a URL reads as a space
    except ValueError:
        problems.append(query_problem(name, "must be an ISO 8601 date-time"))
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@bp.get("/api/observability/audit")
@spec.validate(
    query=AuditQuery, resp=responses(400, 401, HTTP_200=AuditPage), tags=TAGS, skip_validation=True
)
def list_audit():
    """Your audit log, newest first, filterable by action, entity and time."""
    limit, cursor = page_args()
    problems: list[Problem] = []
    since, until = _time_arg("since", problems), _time_arg("until", problems)
    if problems:
        raise InvalidInput(problems)
    stmt = select(AuditLog).where(AuditLog.user_id == current_user_id())
    action, entity_id = query_arg("action"), query_arg("entity_id")
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if entity_id:
        stmt = stmt.where(AuditLog.entity_id == entity_id)
    if since:
        stmt = stmt.where(AuditLog.created_at >= since)
    if until:
        stmt = stmt.where(AuditLog.created_at < until)
    return jsonify(paginate(get_session(), stmt, AuditLog, limit, cursor, audit.serialize))


# -- metrics ---------------------------------------------------------------------------------
# GET /api/observability/metrics is the JSON snapshot: your executions by status and your
# step latencies, plus the shared queue's throughput and the live workers. GET /metrics is
# the same numbers for Prometheus, over every user and without per-user data (public, like
# /api/health: no ids, no inputs, only counts and durations).

LATENCY_WINDOW_SECONDS = 3600
# At most this many finished steps feed the percentiles (the most recent in the window).
LATENCY_SAMPLE_LIMIT = 20_000
THROUGHPUT_WINDOWS = (5, 15)  # minutes
QUANTILES = (0.5, 0.9, 0.95, 0.99)
FINISHED = ("succeeded", "failed")


class LatencyOut(BaseModel):
    """Step durations in milliseconds, nearest-rank percentiles."""

    count: int
    p50: float
    p90: float
    p95: float
    p99: float


class StepLatency(BaseModel):
    """Per node type, over your steps finished in the window."""

    window_seconds: int
    by_type: dict[str, LatencyOut]


class MetricsWorker(BaseModel):
    """A worker from its heartbeat row."""

    name: str
    last_seen: datetime
    alive: bool


class MetricsOut(BaseModel):
    """The metrics snapshot."""

    generated_at: datetime
    executions_by_status: dict[str, int] = Field(description="your executions, every status")
    step_latency_ms: StepLatency
    queue_throughput: dict[str, float] = Field(
        description="steps finished per minute (every user's) over the last 5 and 15 minutes"
    )
    workers_alive: int
    workers: list[MetricsWorker]


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    import math

    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def executions_by_status(session: Any, user_id: str | None) -> dict[str, int]:
    """Execution counts for every status (zeros included); ``user_id`` None counts everyone's."""
    from sqlalchemy import func

    from engine.states import ExecutionStatus
    from models import Execution

    stmt = select(Execution.status, func.count()).group_by(Execution.status)
    if user_id is not None:
        stmt = stmt.where(Execution.user_id == user_id)
    counts = {s.value: 0 for s in ExecutionStatus}
    counts.update({status: int(n) for status, n in session.execute(stmt).all()})
    return counts


def step_latencies(session: Any, user_id: str | None, now: datetime) -> dict[str, list[float]]:
    """Durations (ms, ascending) per node type of steps finished in the last hour (bounded)."""
    from datetime import timedelta

    from models import Execution, StepExecution

    S = StepExecution
    stmt = (
        select(S.node_type, S.started_at, S.finished_at)
        .where(
            S.finished_at >= now - timedelta(seconds=LATENCY_WINDOW_SECONDS),
            S.status.in_(FINISHED),
            S.started_at.is_not(None),
        )
        .order_by(S.finished_at.desc())
        .limit(LATENCY_SAMPLE_LIMIT)
    )
    if user_id is not None:
        stmt = stmt.join(Execution, Execution.id == S.execution_id).where(
            Execution.user_id == user_id
        )
    out: dict[str, list[float]] = {}
    for node_type, started, finished in session.execute(stmt).all():
        ms = max(0.0, (finished - started).total_seconds() * 1000)
        out.setdefault(node_type, []).append(ms)
    for values in out.values():
        values.sort()
    return out


def latency_summary(latencies: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """``{node_type: {count, p50, p90, p95, p99}}`` in milliseconds."""
    return {
        node_type: {
            "count": len(values),
            **{f"p{round(q * 100)}": round(percentile(values, q), 3) for q in QUANTILES},
        }
        for node_type, values in sorted(latencies.items())
    }


def throughput(session: Any, now: datetime) -> dict[str, float]:
    """Steps finished per minute over each window, every user's (the queue is shared)."""
    from datetime import timedelta

    from sqlalchemy import case, func

    from models import StepExecution

    S = StepExecution
    windows = {m: now - timedelta(minutes=m) for m in THROUGHPUT_WINDOWS}
    row = session.execute(
        select(
            *[func.count(case((S.finished_at >= since, 1))) for since in windows.values()]
        ).where(S.finished_at >= min(windows.values()), S.status.in_(FINISHED))
    ).one()
    out: dict[str, float] = {}
    for (minutes, _), count in zip(windows.items(), row, strict=True):
        out[f"steps_finished_{minutes}m"] = int(count)
        out[f"steps_per_minute_{minutes}m"] = round(int(count) / minutes, 3)
    return out


def _workers() -> list[dict[str, Any]]:
    from tasks.heartbeat import workers

    from ..db import get_settings

    return [
        {"name": w["name"], "last_seen": w["last_seen"], "alive": w["alive"]}
        for w in workers(get_settings())
    ]


@bp.get("/api/observability/metrics")
@spec.validate(resp=responses(401, HTTP_200=MetricsOut), tags=TAGS, skip_validation=True)
def metrics():
    """Your executions by status and step latency percentiles, queue throughput, live workers."""
    from models import utcnow

    session = get_session()
    now = utcnow()
    user_id = current_user_id()
    workers = _workers()
    return jsonify(
        {
            "generated_at": now,
            "executions_by_status": executions_by_status(session, user_id),
            "step_latency_ms": {
                "window_seconds": LATENCY_WINDOW_SECONDS,
                "by_type": latency_summary(step_latencies(session, user_id, now)),
            },
            "queue_throughput": throughput(session, now),
            "workers_alive": sum(1 for w in workers if w["alive"]),
            "workers": workers,
        }
    )


def prometheus_text() -> bytes:
    """Every user's numbers in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from sqlalchemy import func

    from models import DeadLetter, StepExecution, utcnow

    session = get_session()
    now = utcnow()
    families: list[Any] = []
    executions = GaugeMetricFamily(
        "canvasflow_executions", "Executions by status", labels=["status"]
    )
    for status, count in executions_by_status(session, None).items():
        executions.add_metric([status], count)
    families.append(executions)
    latency = GaugeMetricFamily(
        "canvasflow_step_latency_seconds",
        f"Step duration percentiles over the last {LATENCY_WINDOW_SECONDS} s",
        labels=["node_type", "quantile"],
    )
    samples = GaugeMetricFamily(
        "canvasflow_step_latency_samples", "Steps behind the percentiles", labels=["node_type"]
    )
    for node_type, values in sorted(step_latencies(session, None, now).items()):
        samples.add_metric([node_type], len(values))
        for q in QUANTILES:
            latency.add_metric([node_type, str(q)], percentile(values, q) / 1000)
    families += [latency, samples]
    rate = GaugeMetricFamily(
        "canvasflow_steps_finished_per_minute", "Steps finished per minute", labels=["window"]
    )
    for name, value in throughput(session, now).items():
        if name.startswith("steps_per_minute_"):
            rate.add_metric([name.removeprefix("steps_per_minute_")], value)
    families.append(rate)
    finished = CounterMetricFamily(
        "canvasflow_steps_finished", "Steps that finished, by status", labels=["status"]
    )
    S = StepExecution
    rows = session.execute(
        select(S.status, func.count()).where(S.status.in_(FINISHED)).group_by(S.status)
    ).all()
    counts = {status: 0 for status in FINISHED} | {status: int(n) for status, n in rows}
    for status, count in counts.items():
        finished.add_metric([status], count)
    families.append(finished)
    dead = GaugeMetricFamily("canvasflow_dead_letters", "Dead-letter rows", labels=["status"])
    rows = session.execute(
        select(DeadLetter.status, func.count()).group_by(DeadLetter.status)
    ).all()
    dead_counts = {"dead": 0, "replayed": 0} | {status: int(n) for status, n in rows}
    for status, count in dead_counts.items():
        dead.add_metric([status], count)
    families.append(dead)
    workers = _workers()
    alive = GaugeMetricFamily("canvasflow_workers_alive", "Workers heartbeating within the timeout")
    alive.add_metric([], sum(1 for w in workers if w["alive"]))
    families.append(alive)
    families += _queue_families()

    class _Snapshot:
        def collect(self) -> Any:
            return iter(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot())
    return generate_latest(registry)


def _queue_families() -> list[Any]:
    """Queue depths; ``canvasflow_broker_up`` 0 (and no depths) when the broker is down."""
    from prometheus_client.core import GaugeMetricFamily

    from tasks.queues import queue_report

    from ..db import get_celery, get_settings

    up = GaugeMetricFamily("canvasflow_broker_up", "1 if the broker answered")
    try:
        report = queue_report(get_settings(), get_celery())
    except Exception:
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    messages = GaugeMetricFamily(
        "canvasflow_queue_messages", "Messages per queue and state", labels=["queue", "state"]
    )
    consumers = GaugeMetricFamily("canvasflow_queue_consumers", "Consumers", labels=["queue"])
    for q in report["queues"]:
        for state in ("ready", "unacked", "dead_lettered"):
            messages.add_metric([q["name"], state], q[state])
        consumers.add_metric([q["name"]], q["consumers"])
    return [up, messages, consumers]


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text format: the metrics snapshot over every user (no per-user data)."""
    from flask import Response
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(
        prometheus_text(),
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )

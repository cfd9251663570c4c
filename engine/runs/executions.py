"""Execution-level transitions: create, finish, cancel, resume, promote pending; reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Execution, LifecycleEvent, StepExecution, utcnow

from ..errors import Conflict, NotFound
from ..semantics import StepView, predecessors_done
from ..states import ExecutionStatus, StepStatus
from .cache import load_compiled
from .state import RUNNING, E, S, _cancel_remaining, _iso


@dataclass
class Started:
    execution: Execution
    created: bool
    # region entries to publish once committed (empty when the execution waits as pending)
    publish: list[str] = field(default_factory=list)


def _insert_or_conflict(session: Session, execution: Execution) -> bool:
    """Insert in a savepoint; True when a unique key (idempotency, cron occurrence) exists."""
    try:
        with session.begin_nested():
            session.add(execution)
            session.flush()
    except IntegrityError:
        return True
    return False


def create_execution(
    session: Session,
    *,
    user_id: str,
    workflow_id: str,
    version: int,
    input: Any,
    chords: bool,
    idempotency_key: str | None = None,
    trigger_id: str | None = None,
    scheduled_for: datetime | None = None,
    max_concurrency: int | None = None,
    parent_execution_id: str | None = None,
    parent_node_id: str | None = None,
) -> Started:
    """Record a new execution and its step rows; the same idempotency key returns the first one."""
    if idempotency_key:
        existing = session.execute(
            select(E).where(E.workflow_id == workflow_id, E.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        if existing is not None:
            return Started(existing, False)
    compiled = load_compiled(session, workflow_id, version, chords)
    wf, plan = compiled.workflow, compiled.plan
    now = utcnow()
    status = RUNNING
    if max_concurrency:
        running = session.execute(
            select(func.count())
            .select_from(E)
            .where(E.workflow_id == workflow_id, E.status == RUNNING)
        ).scalar_one()
        if running >= max_concurrency:
            status = ExecutionStatus.PENDING.value
    execution = Execution(
        user_id=user_id,
        workflow_id=workflow_id,
        workflow_version=version,
        status=status,
        input=input,
        idempotency_key=idempotency_key,
        trigger_id=trigger_id,
        scheduled_for=scheduled_for,
        ends_remaining=len(wf.ends),
        started_at=now if status == RUNNING else None,
        created_at=now,
        parent_execution_id=parent_execution_id,
        parent_node_id=parent_node_id,
    )
    if not idempotency_key and trigger_id is None:
        session.add(execution)
        session.flush()
        conflict = False
    else:
        conflict = _insert_or_conflict(session, execution)
    if conflict:
        # Lost the race on (workflow, idempotency_key) or (trigger, scheduled_for).
        clause = (
            (E.idempotency_key == idempotency_key)
            if idempotency_key
            else ((E.trigger_id == trigger_id) & (E.scheduled_for == scheduled_for))
        )
        existing = session.execute(
            select(E).where(E.workflow_id == workflow_id, clause)
        ).scalar_one()
        return Started(existing, False)
    session.execute(
        insert(S),
        [
            {
                "execution_id": execution.id,
                "node_id": n.id,
                "node_type": n.type,
                "status": "pending",
                "attempts": 0,
                "remaining": plan.counter_in.get(n.id, 0),
                "queued_at": now if n.id == wf.start.id and status == RUNNING else None,
            }
            for n in wf.nodes
        ],
    )
    session.add(
        LifecycleEvent(
            execution_id=execution.id,
            event="created",
            detail={"status": status, "trigger_id": trigger_id},
        )
    )
    return Started(execution, True, [wf.start.id] if status == RUNNING else [])


def cancel_execution(session: Session, execution_id: str) -> list[str]:
    """Cancel a pending or running execution; returns the task ids to revoke."""
    now = utcnow()
    done = session.execute(
        update(E)
        .where(E.id == execution_id, E.status.in_([ExecutionStatus.PENDING.value, RUNNING]))
        .values(status=ExecutionStatus.CANCELLED.value, finished_at=now, updated_at=now)
        .returning(E.id)
    ).first()
    if done is None:
        status = session.execute(select(E.status).where(E.id == execution_id)).scalar_one_or_none()
        if status is None:
            raise NotFound(f"execution {execution_id} not found")
        raise Conflict(f"execution {execution_id} is already {status}")
    session.add(LifecycleEvent(execution_id=execution_id, event="cancelled"))
    return _cancel_remaining(session, execution_id, now)


def steps_of(session: Session, execution_id: str) -> list[StepExecution]:
    """Step rows in a stable order (start time, then row id)."""
    return list(
        session.execute(select(S).where(S.execution_id == execution_id).order_by(S.id)).scalars()
    )


def timeline(session: Session, execution_id: str) -> list[dict[str, Any]]:
    """Every attempt of every step, in start order."""
    rows: list[dict[str, Any]] = []
    live = {StepStatus.RUNNING.value, StepStatus.WAITING.value, StepStatus.CANCELLED.value}
    for step in steps_of(session, execution_id):
        for h in step.history or []:
            rows.append(
                {
                    "node_id": step.node_id,
                    "status": h.get("status"),
                    "attempt": h.get("attempt"),
                    "started_at": h.get("started_at"),
                    "finished_at": h.get("finished_at"),
                }
            )
        # The attempt in progress (or cut short by a cancel) is not in the history yet.
        if (
            step.status in live and step.started_at is not None
        ) or step.status == StepStatus.SKIPPED.value:
            started = step.started_at or step.finished_at
            rows.append(
                {
                    "node_id": step.node_id,
                    "status": step.status,
                    "attempt": step.attempts,
                    "started_at": _iso(started),
                    "finished_at": _iso(step.finished_at),
                }
            )
    for r in rows:
        r["duration_ms"] = _duration_ms(r["started_at"], r["finished_at"])
    rows.sort(key=lambda r: (r["started_at"] or "9999", r["node_id"]))
    return rows


def _duration_ms(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round(
        (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000, 3
    )


def promote_pending(session: Session) -> list[tuple[str, str]]:
    """Start pending executions where their workflow's concurrency allows; returns (id, start node)."""
    from models import Workflow

    started: list[tuple[str, str]] = []
    pending = session.execute(
        select(E.workflow_id, func.count())
        .where(E.status == ExecutionStatus.PENDING.value)
        .group_by(E.workflow_id)
    ).all()
    for workflow_id, _count in pending:
        limit = session.execute(
            select(Workflow.max_concurrency).where(Workflow.id == workflow_id)
        ).scalar_one_or_none()
        running = session.execute(
            select(func.count())
            .select_from(E)
            .where(E.workflow_id == workflow_id, E.status == RUNNING)
        ).scalar_one()
        free = (limit - running) if limit else 10**9
        if free <= 0:
            continue
        ids = (
            session.execute(
                select(E.id)
                .where(E.workflow_id == workflow_id, E.status == ExecutionStatus.PENDING.value)
                .order_by(E.created_at, E.id)
                .limit(min(free, 500))
            )
            .scalars()
            .all()
        )
        now = utcnow()
        for eid in ids:
            done = session.execute(
                update(E)
                .where(E.id == eid, E.status == ExecutionStatus.PENDING.value)
                .values(status=RUNNING, started_at=now, updated_at=now)
                .returning(E.id)
            ).first()
            if done is None:
                continue
            start = session.execute(
                select(S.node_id).where(S.execution_id == eid, S.node_type == "start")
            ).scalar_one()
            session.execute(
                update(S).where(S.execution_id == eid, S.node_id == start).values(queued_at=now)
            )
            session.add(LifecycleEvent(execution_id=eid, event="started"))
            started.append((eid, start))
    return started


def resume_execution(session: Session, execution_id: str, *, chords: bool) -> list[str]:
    """Put a failed execution back to running from its failed steps; returns nodes to publish.

    Succeeded and skipped steps keep their outputs; failed and cancelled ones become pending,
    counters are recomputed from what is done, and every pending step whose predecessors are
    all done is returned for per-node (repair) dispatch.
    """
    exe = session.execute(
        select(E).where(E.id == execution_id).with_for_update()
    ).scalar_one_or_none()
    if exe is None:
        raise NotFound(f"execution {execution_id} not found")
    if exe.status != ExecutionStatus.FAILED.value:
        raise Conflict(f"only failed executions can be retried; this one is {exe.status}")
    now = utcnow()
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    wf, plan = compiled.workflow, compiled.plan
    # Only graph nodes are reset: nested Serverless Workflow task rows are re-made by their node.
    session.execute(
        update(S)
        .where(
            S.execution_id == execution_id,
            S.node_id.in_(list(wf.node_map)),
            S.status.in_([StepStatus.FAILED.value, StepStatus.CANCELLED.value]),
        )
        .values(
            status=StepStatus.PENDING.value,
            finished_at=None,
            lease_expires_at=None,
            wake_at=None,
            queued_at=now,
            updated_at=now,
            attempts=0,
        )
    )
    rows = [
        r
        for r in session.execute(
            select(S.node_id, S.status, S.output).where(S.execution_id == execution_id)
        )
        if r.node_id in wf.node_map
    ]
    views = {r.node_id: StepView(r.status, r.output) for r in rows}
    done = {StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value}
    for node_id in [r.node_id for r in rows if r.status not in done]:
        remaining = sum(
            1
            for s in wf.predecessors(node_id)
            if (s, node_id) in plan.counter_edges and views[s].status not in done
        )
        session.execute(
            update(S)
            .where(S.execution_id == execution_id, S.node_id == node_id)
            .values(remaining=remaining)
        )
    ends_left = sum(1 for n in wf.ends if views[n.id].status not in done)
    session.execute(
        update(E)
        .where(E.id == execution_id)
        .values(
            status=RUNNING, error=None, finished_at=None, ends_remaining=ends_left, updated_at=now
        )
    )
    session.add(LifecycleEvent(execution_id=execution_id, event="retried"))
    return [
        r.node_id for r in rows if r.status not in done and predecessors_done(wf, r.node_id, views)
    ]

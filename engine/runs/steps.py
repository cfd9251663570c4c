"""Step transitions: claim, skip, complete, retry, fail, park and wake — each a compare-and-set."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, exists, literal, select, update
from sqlalchemy.orm import Session

from models import DeadLetter, LifecycleEvent, utcnow

from ..semantics import StepView, expression_context, node_input, predecessors_done, taken_sources
from ..states import ExecutionStatus, StepStatus
from .cache import _execution_header, load_compiled, prev_usable
from .state import (
    CLAIM,
    RUNNING,
    SC,
    ST,
    Claim,
    E,
    Followups,
    S,
    _cancel_remaining,
    _cas_running,
    _fast,
    _history_entry,
    _views,
    end_reached,
    record_pure_success,
    turn_params,
)


def claim_step(
    session: Session,
    execution_id: str,
    node_id: str,
    *,
    chords: bool,
    repair: bool = False,
    takeover: bool = False,
    task_id: str | None = None,
    worker: str | None = None,
    lease_seconds: float = 300.0,
    prev: dict[str, Any] | None = None,
) -> tuple[Claim, Followups]:
    """Move a step to running (or skipped) if it is its turn; otherwise say to drop the message.

    ``prev`` is the predecessor's output handed over in the message: a first attempt that
    needs nothing else reads no step rows.
    """
    _fast(session)
    now = utcnow()
    owner = bool(takeover and task_id)
    params = {
        "b_eid": execution_id,
        "b_eid2": execution_id,
        "b_nid": node_id,
        "b_started": now,
        "b_task_id": task_id,
        "b_worker": worker,
        "b_lease": now + timedelta(seconds=lease_seconds),
        "b_updated": now,
    }
    if owner:
        params |= {"b_task": task_id, "b_now": now}
    row = session.connection().execute(CLAIM[owner], params).first()
    if row is None:
        return Claim("drop", execution_id, node_id), _cancel_if_execution_over(
            session, execution_id, node_id
        )
    exe = _execution_header(session, execution_id)
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    wf = compiled.workflow
    node = wf.node_map[node_id]
    preds = set(wf.predecessors(node_id))
    needs = compiled.needs.get(node_id)
    if (
        prev is not None
        and row.attempts == 1
        and not row.history
        and prev_usable(compiled, node_id, prev["node"])
    ):
        views = {prev["node"]: StepView(StepStatus.SUCCEEDED.value, prev["output"])}
    else:
        views = _views(session, execution_id, None if needs is None else preds | needs)
    claim = Claim(
        "run",
        execution_id,
        node_id,
        node=node,
        attempt=row.attempts,
        history=list(row.history or []),
        started_at=now,
        user_id=exe.user_id,
        workflow_id=exe.workflow_id,
        version=exe.workflow_version,
        compiled=compiled,
        repair=repair,
    )
    if not predecessors_done(wf, node_id, views):
        # Early (a duplicate chord header finished the chord): not our turn yet.
        session.execute(
            update(S)
            .where(S.execution_id == execution_id, S.node_id == node_id)
            .values(
                status=StepStatus.PENDING.value,
                attempts=S.attempts - 1,
                started_at=None,
                lease_expires_at=None,
            )
        )
        return Claim("drop", execution_id, node_id), Followups()
    return _decide(claim, views, exe.input), Followups()


def _decide(claim: Claim, views: dict[str, StepView], execution_input: Any) -> Claim:
    """Run or skip: with no taken incoming edge the step is skipped (by skip_step, in a
    transaction of its own since it resolves counters); else compute its input and context.
    The input is written with the step's outcome (one statement less on the hot path)."""
    assert claim.compiled is not None and claim.node is not None
    wf = claim.compiled.workflow
    sources = taken_sources(wf, claim.node_id, views)
    if claim.node.type != "start" and not sources:
        claim.kind = "skip"
        return claim
    claim.input = node_input(wf, claim.node_id, sources, views, execution_input)
    claim.context = expression_context(
        claim.execution_id, claim.workflow_id, execution_input, views, claim.input
    )
    return claim


def _record(session: Session, claim: Claim, **values: Any) -> bool:
    """The outcome of exactly the claimed attempt, by compare-and-set; False if it lost."""
    statement = _cas_running(claim).values(**values).returning(SC.id)
    params = turn_params(claim) if claim.pure else {}
    return session.connection().execute(statement, params).first() is not None


def skip_step(session: Session, claim: Claim) -> Followups | None:
    """Record that no incoming edge of the claimed step was taken; the skip flows on."""
    now = utcnow()
    done = _record(
        session,
        claim,
        status=StepStatus.SKIPPED.value,
        attempts=claim.attempt - 1,
        started_at=None,
        finished_at=now,
        lease_expires_at=None,
        updated_at=now,
    )
    if not done:
        return None
    return _after_terminal(session, claim, StepStatus.SKIPPED.value, None)


def completion_is_one_statement(claim: Claim) -> bool:
    """Whether recording this step's success is a single UPDATE (no counters, no end, no repair).

    Such a completion may run in autocommit: one round trip instead of BEGIN/UPDATE/COMMIT.
    """
    assert claim.compiled is not None and claim.node is not None
    return not (
        claim.repair
        or claim.node.type in ("end", "webhook_response")
        or claim.compiled.plan.counter_out.get(claim.node_id)
    )


def _cancel_if_execution_over(session: Session, execution_id: str, node_id: str) -> Followups:
    """A message for a finished or cancelled execution: make sure its step ends `cancelled`."""
    session.execute(
        update(S)
        .where(
            S.execution_id == execution_id,
            S.node_id == node_id,
            S.status.in_([StepStatus.PENDING.value, StepStatus.WAITING.value]),
            exists().where(
                E.id == execution_id,
                E.status.in_([ExecutionStatus.CANCELLED.value, ExecutionStatus.FAILED.value]),
            ),
        )
        .values(status=StepStatus.CANCELLED.value, finished_at=utcnow())
    )
    return Followups()


def complete_step(session: Session, claim: Claim, output: Any) -> Followups | None:
    """Record success and resolve what follows; None if the step was cancelled meanwhile."""
    _fast(session)
    now = utcnow()
    history = claim.history + [_history_entry(claim, "succeeded", now)]
    if claim.pure:
        done = record_pure_success(session, claim, output, now, history)
    else:
        done = _record(
            session,
            claim,
            status=StepStatus.SUCCEEDED.value,
            input=claim.input,
            output=output,
            finished_at=now,
            error=None,
            lease_expires_at=None,
            updated_at=now,
            history=history,
        )
    if not done:
        return None
    return _after_terminal(session, claim, StepStatus.SUCCEEDED.value, output)


def _after_terminal(session: Session, claim: Claim, status: str, output: Any) -> Followups:
    """Counter edges, per-node repair dispatch, execution output and completion."""
    assert claim.compiled is not None
    wf, plan = claim.compiled.workflow, claim.compiled.plan
    node = wf.node_map[claim.node_id]
    out = Followups()
    targets = plan.counter_out.get(claim.node_id, ())
    if targets:
        rows = (
            session.connection()
            .execute(
                update(ST)
                .where(SC.execution_id == claim.execution_id, SC.node_id.in_(list(targets)))
                .values(remaining=SC.remaining - 1)
                .returning(SC.node_id, SC.remaining)
            )
            .all()
        )
        out.regions += [r.node_id for r in rows if r.remaining == 0]
    if claim.repair:
        canvas_next = [
            t for t in wf.successors(claim.node_id) if (claim.node_id, t) not in plan.counter_edges
        ]
        if canvas_next:
            wanted: set[str] = set(canvas_next)
            for t in canvas_next:
                wanted.update(wf.predecessors(t))
            views = _views(session, claim.execution_id, wanted)
            out.repair += [
                t
                for t in canvas_next
                if predecessors_done(wf, t, views)
                and views.get(t, StepView("pending")).status == StepStatus.PENDING.value
            ]
    if node.type == "webhook_response" and status == StepStatus.SUCCEEDED.value:
        session.execute(
            update(E)
            .where(E.id == claim.execution_id, E.response.is_(None))
            .values(response=output)
        )
    if node.type == "end":
        if status == StepStatus.SUCCEEDED.value:
            out.finished = end_reached(session, claim.execution_id, claim.node_id, output)
        else:
            out.finished = end_reached(session, claim.execution_id, claim.node_id)
    return out


def schedule_retry(
    session: Session, claim: Claim, error: dict[str, Any], delay: float, parked: bool
) -> bool:
    """Put a failed attempt back to pending until ``delay`` seconds from now."""
    now = utcnow()
    wake = now + timedelta(seconds=delay)
    done = _record(
        session,
        claim,
        status=StepStatus.PENDING.value,
        error=error,
        lease_expires_at=None,
        wake_at=wake,
        queued_at=None if parked else wake,
        updated_at=now,
        history=claim.history + [_history_entry(claim, "failed", now, error)],
    )
    return done


def fail_step(
    session: Session,
    claim: Claim,
    error: dict[str, Any],
    message: dict[str, Any] | None = None,
    queue: str | None = None,
) -> Followups:
    """Fail the step and its execution: cancel the rest, keep the message as a dead letter."""
    now = utcnow()
    done = _record(
        session,
        claim,
        status=StepStatus.FAILED.value,
        input=claim.input,
        error=error,
        finished_at=now,
        lease_expires_at=None,
        updated_at=now,
        history=claim.history + [_history_entry(claim, "failed", now, error)],
    )
    if not done:
        return Followups()
    session.execute(
        update(E)
        .where(E.id == claim.execution_id, E.status == RUNNING)
        .values(
            status=ExecutionStatus.FAILED.value,
            finished_at=now,
            updated_at=now,
            error={"node_id": claim.node_id, **error},
        )
    )
    out = Followups(revoke=_cancel_remaining(session, claim.execution_id, now))
    session.add(
        DeadLetter(
            user_id=claim.user_id,
            execution_id=claim.execution_id,
            node_id=claim.node_id,
            error=error,
            message=message,
            queue=queue,
        )
    )
    session.add(
        LifecycleEvent(
            execution_id=claim.execution_id, node_id=claim.node_id, event="failed", detail=error
        )
    )
    out.finished = True
    return out


def park_step(session: Session, claim: Claim, wake_at: datetime) -> bool:
    """A delay: the step waits in the database until ``wake_at`` (no message held)."""
    now = utcnow()
    done = _record(
        session,
        claim,
        status=StepStatus.WAITING.value,
        input=claim.input,
        wake_at=wake_at,
        lease_expires_at=None,
        updated_at=now,
    )
    return done


def wake_step(
    session: Session, execution_id: str, node_id: str, *, chords: bool
) -> Followups | None:
    """Finish a waiting delay whose time has come; None if it is not (or no longer) due."""
    now = utcnow()
    row = session.execute(
        update(S)
        .where(
            S.execution_id == execution_id,
            S.node_id == node_id,
            S.status == StepStatus.WAITING.value,
            S.wake_at <= now + timedelta(milliseconds=500),
            exists().where(E.id == execution_id, E.status == RUNNING),
        )
        .values(status=StepStatus.SUCCEEDED.value, output=S.input, finished_at=now, updated_at=now)
        .returning(S.input, S.attempts, S.history, S.started_at)
    ).first()
    if row is None:
        return None
    exe = session.execute(
        select(E.workflow_id, E.workflow_version, E.user_id).where(E.id == execution_id)
    ).one()
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    claim = Claim(
        "run",
        execution_id,
        node_id,
        node=compiled.workflow.node_map[node_id],
        attempt=row.attempts,
        history=list(row.history or []),
        started_at=row.started_at,
        user_id=exe.user_id,
        workflow_id=exe.workflow_id,
        version=exe.workflow_version,
        compiled=compiled,
    )
    session.execute(
        update(S)
        .where(S.execution_id == execution_id, S.node_id == node_id)
        .values(history=claim.history + [_history_entry(claim, "succeeded", now)])
    )
    return _after_terminal(session, claim, StepStatus.SUCCEEDED.value, row.input)


def requeue_stamp(now: datetime) -> Any:
    """A task id for a re-queued step, unique per row and moment (set by the re-queue CAS)."""
    return literal(f"rq-{int(now.timestamp() * 1000)}-") + cast(S.id, String)

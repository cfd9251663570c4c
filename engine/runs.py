"""Execution state transitions: the one engine module given a Session.

Every transition is a compare-and-set on the step row inside one short transaction, so a
message delivered twice, a repair publish racing the original, or a stale worker can never
run a step twice nor move a row backwards. Functions return what to publish; the caller
publishes *after* commit (the ticker republishes anything a crash loses in between).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, insert, literal, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import DeadLetter, Execution, LifecycleEvent, StepExecution, WorkflowVersion, utcnow

from .compiler import Plan, compile_plan
from .definitions import load_definition
from .errors import Conflict, NotFound
from .graph import Node, Workflow
from .semantics import StepView, expression_context, node_input, predecessors_done, taken_sources
from .states import ExecutionStatus, StepStatus

S = StepExecution
E = Execution
# The hot path (claim, complete, counters) uses plain Core on the tables: no ORM bulk
# machinery per statement.
ST = StepExecution.__table__
SC = ST.c
EC = Execution.__table__.c
RUNNING = ExecutionStatus.RUNNING.value


@dataclass(frozen=True)
class Compiled:
    workflow: Workflow
    plan: Plan
    # node -> step ids its expressions read (None = every step)
    needs: dict[str, frozenset[str] | None]


_cache: OrderedDict[tuple[str, int, bool], Compiled] = OrderedDict()
_cache_lock = threading.Lock()


def _needs(workflow: Workflow) -> dict[str, frozenset[str] | None]:
    try:
        from .expressions import referenced_steps, referenced_steps_in_expression
    except ImportError:  # pragma: no cover - during bootstrap
        return {n.id: None for n in workflow.nodes}
    out: dict[str, frozenset[str] | None] = {}
    for n in workflow.nodes:
        refs: set[str] | None = set()
        for key, value in n.config.items():
            found = (
                referenced_steps_in_expression(value)
                if key in ("expression",) and isinstance(value, str)
                else referenced_steps(value)
            )
            if found is None:
                refs = None
                break
            refs |= found
        out[n.id] = None if refs is None else frozenset(refs)
    return out


def compile_version(definition: Any, chords: bool) -> Compiled:
    """Validate and compile a stored definition (pure; cached by the caller)."""
    wf = load_definition(definition)
    return Compiled(wf, compile_plan(wf, chords=chords), _needs(wf))


def load_compiled(session: Session, workflow_id: str, version: int, chords: bool) -> Compiled:
    """The compiled plan of one workflow version, cached per process (versions never change)."""
    key = (workflow_id, version, chords)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    definition = session.execute(
        select(WorkflowVersion.definition).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
        )
    ).scalar_one_or_none()
    if definition is None:
        raise NotFound(f"workflow {workflow_id} has no version {version}")
    compiled = compile_version(definition, chords)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > 256:
            _cache.popitem(last=False)
    return compiled


@dataclass(frozen=True)
class _Header:
    input: Any
    workflow_id: str
    workflow_version: int
    user_id: str


_headers: OrderedDict[str, _Header] = OrderedDict()


def _execution_header(session: Session, execution_id: str) -> _Header:
    """What never changes about an execution, cached per process (one query less per step)."""
    with _cache_lock:
        hit = _headers.get(execution_id)
        if hit is not None:
            _headers.move_to_end(execution_id)
            return hit
    row = session.execute(
        select(E.input, E.workflow_id, E.workflow_version, E.user_id).where(E.id == execution_id)
    ).one()
    header = _Header(row.input, row.workflow_id, row.workflow_version, row.user_id)
    with _cache_lock:
        _headers[execution_id] = header
        while len(_headers) > 4096:
            _headers.popitem(last=False)
    return header


def _fast(session: Session) -> None:
    # Progress writes may be lost in a crash: the ticker redoes them, so skip the fsync wait.
    if session.info.get("progress"):
        return  # its connections have synchronous_commit off already
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


# --------------------------------------------------------------------------- starting


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


# --------------------------------------------------------------------------- running a step


@dataclass
class Claim:
    """The outcome of trying to start a step; ``kind`` says what the task should do."""

    kind: str  # run | skip | drop
    execution_id: str
    node_id: str
    node: Node | None = None
    input: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    history: list[Any] = field(default_factory=list)
    started_at: datetime | None = None
    user_id: str = ""
    workflow_id: str = ""
    version: int = 0
    compiled: Compiled | None = None
    repair: bool = False
    # A pure step (no I/O) is never written as `running`: its outcome moves the row
    # straight from `pending` (one statement instead of two; a crash just re-runs it).
    pure: bool = False
    task_id: str | None = None
    worker: str | None = None


# Node types whose handler does no I/O and ends in milliseconds (jq is time-bounded).
PURE_TYPES = frozenset({"start", "fork", "join", "transform", "condition"})


@dataclass
class Followups:
    """What to publish after commit."""

    regions: list[str] = field(default_factory=list)  # region entries (counter reached zero)
    repair: list[str] = field(default_factory=list)  # single nodes, per-node dispatch
    revoke: list[str] = field(default_factory=list)  # Celery task ids to revoke
    finished: bool = False

    def extend(self, other: Followups) -> None:
        self.regions += other.regions
        self.repair += other.repair
        self.revoke += other.revoke
        self.finished = self.finished or other.finished


def _views(
    session: Session, execution_id: str, node_ids: frozenset[str] | set[str] | None
) -> dict[str, StepView]:
    stmt = select(SC.node_id, SC.status, SC.output).where(SC.execution_id == execution_id)
    if node_ids is not None:
        if not node_ids:
            return {}
        stmt = stmt.where(SC.node_id.in_(list(node_ids)))
    return {r.node_id: StepView(r.status, r.output) for r in session.connection().execute(stmt)}


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
) -> tuple[Claim, Followups]:
    """Move a step to running (or skipped) if it is its turn; otherwise say to drop the message."""
    _fast(session)
    now = utcnow()
    # A running step is taken over only by the message that owns it (a redelivery after its
    # worker died, or a re-queue that stamped its id on the row) or once its lease expired;
    # a stale duplicate of a re-queued step is dropped instead of running it twice.
    turn = SC.status == StepStatus.PENDING.value
    if takeover and task_id:
        turn = or_(
            turn,
            and_(
                SC.status == StepStatus.RUNNING.value,
                or_(SC.task_id == task_id, SC.lease_expires_at < now),
            ),
        )
    row = (
        session.connection()
        .execute(
            update(ST)
            .where(
                SC.execution_id == execution_id,
                SC.node_id == node_id,
                turn,
                exists().where(EC.id == execution_id, EC.status == RUNNING),
            )
            .values(
                status=StepStatus.RUNNING.value,
                attempts=SC.attempts + 1,
                started_at=now,
                task_id=task_id,
                worker=worker,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                wake_at=None,
                updated_at=now,
            )
            .returning(SC.attempts, SC.history)
        )
        .first()
    )
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


def skip_step(session: Session, claim: Claim) -> Followups | None:
    """Record that no incoming edge of the claimed step was taken; the skip flows on."""
    now = utcnow()
    done = session.execute(
        _cas_running(claim)
        .values(
            status=StepStatus.SKIPPED.value,
            attempts=claim.attempt - 1,
            started_at=None,
            finished_at=now,
            lease_expires_at=None,
            updated_at=now,
        )
        .returning(SC.id)
    ).first()
    if done is None:
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


def _history_entry(
    claim: Claim, status: str, finished: datetime | None, error: Any = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "attempt": claim.attempt,
        "status": status,
        "started_at": _iso(claim.started_at),
        "finished_at": _iso(finished),
    }
    if error is not None:
        entry["error"] = error
    return entry


def _cas_running(claim: Claim) -> Any:
    """The compare-and-set that records an outcome of exactly this attempt."""
    if claim.pure:
        return (
            update(ST)
            .where(
                SC.execution_id == claim.execution_id,
                SC.node_id == claim.node_id,
                SC.status == StepStatus.PENDING.value,
                SC.attempts == claim.attempt - 1,
                exists().where(EC.id == claim.execution_id, EC.status == RUNNING),
            )
            .values(
                attempts=claim.attempt,
                started_at=claim.started_at,
                task_id=claim.task_id,
                worker=claim.worker,
            )
        )
    return update(ST).where(
        SC.execution_id == claim.execution_id,
        SC.node_id == claim.node_id,
        SC.status == StepStatus.RUNNING.value,
        SC.attempts == claim.attempt,
    )


def node_type_of(session: Session, execution_id: str, node_id: str, chords: bool) -> str:
    """The type of a node of an execution (from the per-process caches after the first step)."""
    exe = _execution_header(session, execution_id)
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    return compiled.workflow.node_map[node_id].type


def prepare_pure_step(
    session: Session,
    execution_id: str,
    node_id: str,
    *,
    chords: bool,
    repair: bool = False,
    task_id: str | None = None,
    worker: str | None = None,
) -> tuple[Claim, Followups]:
    """Read what a pure step needs, writing nothing; its outcome is the step's one write."""
    now = utcnow()
    exe = _execution_header(session, execution_id)
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    wf = compiled.workflow
    node = wf.node_map[node_id]
    needs = compiled.needs.get(node_id)
    wanted = None if needs is None else set(wf.predecessors(node_id)) | needs | {node_id}
    rows = (
        session.connection()
        .execute(
            select(SC.node_id, SC.status, SC.output, SC.attempts, SC.history).where(
                SC.execution_id == execution_id,
                *([SC.node_id.in_(list(wanted))] if wanted is not None else []),
            )
        )
        .all()
    )
    own = next((r for r in rows if r.node_id == node_id), None)
    if own is not None and own.status == StepStatus.RUNNING.value:
        # Written as running by a claim (a re-queue, or an older worker): take the claim path.
        return Claim("claim", execution_id, node_id), Followups()
    if own is None or own.status != StepStatus.PENDING.value:
        return Claim("drop", execution_id, node_id), Followups()
    views = {r.node_id: StepView(r.status, r.output) for r in rows if r.node_id != node_id}
    claim = Claim(
        "run",
        execution_id,
        node_id,
        node=node,
        attempt=own.attempts + 1,
        history=list(own.history or []),
        started_at=now,
        user_id=exe.user_id,
        workflow_id=exe.workflow_id,
        version=exe.workflow_version,
        compiled=compiled,
        repair=repair,
        pure=True,
        task_id=task_id,
        worker=worker,
    )
    if not predecessors_done(wf, node_id, views):
        return Claim("drop", execution_id, node_id), Followups()
    return _decide(claim, views, exe.input), Followups()


def complete_step(session: Session, claim: Claim, output: Any) -> Followups | None:
    """Record success and resolve what follows; None if the step was cancelled meanwhile."""
    _fast(session)
    now = utcnow()
    done = (
        session.connection()
        .execute(
            _cas_running(claim)
            .values(
                status=StepStatus.SUCCEEDED.value,
                input=claim.input,
                output=output,
                finished_at=now,
                error=None,
                lease_expires_at=None,
                updated_at=now,
                history=claim.history + [_history_entry(claim, "succeeded", now)],
            )
            .returning(SC.id)
        )
        .first()
    )
    if done is None:
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
            session.execute(
                update(E)
                .where(E.id == claim.execution_id, E.output_node.is_(None))
                .values(output=output, output_node=claim.node_id)
            )
        left = session.execute(
            update(E)
            .where(E.id == claim.execution_id)
            .values(ends_remaining=E.ends_remaining - 1)
            .returning(E.ends_remaining)
        ).scalar_one()
        if left <= 0:
            finish_execution(session, claim.execution_id)
            out.finished = True
    return out


def finish_execution(session: Session, execution_id: str) -> bool:
    """Mark a running execution succeeded (every end is terminal)."""
    now = utcnow()
    done = session.execute(
        update(E)
        .where(E.id == execution_id, E.status == RUNNING)
        .values(status=ExecutionStatus.SUCCEEDED.value, finished_at=now, updated_at=now)
        .returning(E.id)
    ).first()
    if done:
        session.add(LifecycleEvent(execution_id=execution_id, event="succeeded"))
    return done is not None


def schedule_retry(
    session: Session, claim: Claim, error: dict[str, Any], delay: float, parked: bool
) -> bool:
    """Put a failed attempt back to pending until ``delay`` seconds from now."""
    now = utcnow()
    wake = now + timedelta(seconds=delay)
    done = session.execute(
        _cas_running(claim)
        .values(
            status=StepStatus.PENDING.value,
            error=error,
            lease_expires_at=None,
            wake_at=wake,
            queued_at=None if parked else wake,
            updated_at=now,
            history=claim.history + [_history_entry(claim, "failed", now, error)],
        )
        .returning(S.id)
    ).first()
    return done is not None


def fail_step(
    session: Session,
    claim: Claim,
    error: dict[str, Any],
    message: dict[str, Any] | None = None,
    queue: str | None = None,
) -> Followups:
    """Fail the step and its execution: cancel the rest, keep the message as a dead letter."""
    now = utcnow()
    done = session.execute(
        _cas_running(claim)
        .values(
            status=StepStatus.FAILED.value,
            input=claim.input,
            error=error,
            finished_at=now,
            lease_expires_at=None,
            updated_at=now,
            history=claim.history + [_history_entry(claim, "failed", now, error)],
        )
        .returning(S.id)
    ).first()
    if done is None:
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


def _cancel_remaining(session: Session, execution_id: str, now: datetime) -> list[str]:
    running = [
        r
        for r in session.execute(
            select(S.task_id).where(
                S.execution_id == execution_id, S.status == StepStatus.RUNNING.value
            )
        ).scalars()
        if r
    ]
    session.execute(
        update(S)
        .where(
            S.execution_id == execution_id,
            S.status.in_(
                [StepStatus.PENDING.value, StepStatus.WAITING.value, StepStatus.RUNNING.value]
            ),
        )
        .values(
            status=StepStatus.CANCELLED.value,
            finished_at=now,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return running


def park_step(session: Session, claim: Claim, wake_at: datetime) -> bool:
    """A delay: the step waits in the database until ``wake_at`` (no message held)."""
    now = utcnow()
    done = session.execute(
        _cas_running(claim)
        .values(
            status=StepStatus.WAITING.value,
            input=claim.input,
            wake_at=wake_at,
            lease_expires_at=None,
            updated_at=now,
        )
        .returning(S.id)
    ).first()
    return done is not None


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


# --------------------------------------------------------------------------- operator actions


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


# --------------------------------------------------------------------------- dead letters


@dataclass
class Replay:
    """What replaying a dead letter did: the rows it resolved and the nodes to publish."""

    execution_id: str
    node_id: str
    # the dead letters resolved: the one asked for and any older ones of the same step
    dead_letters: list[DeadLetter] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)


def replay_dead_letter(session: Session, dead_letter_id: str, *, chords: bool) -> Replay:
    """Resume a failed execution from the dead-lettered step; mark its dead letters replayed.

    Conflict when the row was already replayed, when the execution is no longer failed
    (retried or cancelled meanwhile), or when that step is no longer the failed one.
    The caller publishes ``publish`` after commit, as with :func:`resume_execution`.
    """
    row = session.execute(
        select(DeadLetter).where(DeadLetter.id == dead_letter_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"dead letter {dead_letter_id} not found")
    if row.status != "dead":
        raise Conflict(f"dead letter {dead_letter_id} was already {row.status}")
    eid, nid = row.execution_id, row.node_id
    execution = session.execute(select(E.status).where(E.id == eid)).scalar_one_or_none()
    if execution != ExecutionStatus.FAILED.value:
        raise Conflict(f"execution {eid} is {execution}; only a failed execution can be replayed")
    step = session.execute(
        select(S.status).where(S.execution_id == eid, S.node_id == nid)
    ).scalar_one_or_none()
    if step != StepStatus.FAILED.value:
        raise Conflict(f"step {nid} of execution {eid} is {step}, not failed")
    publish = resume_execution(session, eid, chords=chords)
    now = utcnow()
    resolved = list(
        session.execute(
            select(DeadLetter).where(
                DeadLetter.execution_id == eid,
                DeadLetter.node_id == nid,
                DeadLetter.status == "dead",
            )
        ).scalars()
    )
    for dl in resolved:
        dl.status = "replayed"
        dl.replayed_at = now
    session.add(
        LifecycleEvent(
            execution_id=eid, node_id=nid, event="replayed", detail={"dead_letter_id": row.id}
        )
    )
    return Replay(eid, nid, resolved, publish)


def requeue_stamp(now: datetime) -> Any:
    """A task id for a re-queued step, unique per row and moment (set by the re-queue CAS)."""
    return literal(f"rq-{int(now.timestamp() * 1000)}-") + cast(S.id, String)

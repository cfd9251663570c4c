"""Shared pieces of the step record: table aliases, the Claim, compare-and-set helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, insert, or_, select, text, update
from sqlalchemy.orm import Session

from models import Execution, LifecycleEvent, StepExecution, utcnow

from ..compiler import PURE_TYPES as PURE_TYPES
from ..graph import Node
from ..semantics import StepView
from ..states import ExecutionStatus, StepStatus
from .cache import Compiled

S = StepExecution


E = Execution


# The hot path (claim, complete, counters) uses plain Core on the tables: no ORM bulk
# machinery per statement.
ST = StepExecution.__table__


SC = ST.c


EC = Execution.__table__.c


RUNNING = ExecutionStatus.RUNNING.value


def _fast(session: Session) -> None:
    # Progress writes may be lost in a crash: the ticker redoes them, so skip the fsync wait.
    if session.info.get("progress"):
        return  # its connections have synchronous_commit off already
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


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
    # Prepared from the output the predecessor handed over, assuming a fresh row.
    handed: bool = False


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


def _pure_turn(handed: bool) -> list[Any]:
    """Where a pure step's outcome may land: still pending, its run still running.

    Bound parameters (see turn_params), so the prebuilt success statement shares them.
    """
    return [
        SC.execution_id == bindparam("b_eid"),
        SC.node_id == bindparam("b_nid"),
        SC.status == StepStatus.PENDING.value,
        SC.attempts == bindparam("b_before"),
        exists().where(EC.id == bindparam("b_eid2"), EC.status == RUNNING),
        # a handed-over claim assumed a fresh row: no earlier attempt in its history
        *([SC.history.is_(None)] if handed else []),
    ]


def turn_params(claim: Claim) -> dict[str, Any]:
    """The values of _pure_turn's parameters for ``claim``."""
    return {
        "b_eid": claim.execution_id,
        "b_eid2": claim.execution_id,
        "b_nid": claim.node_id,
        "b_before": claim.attempt - 1,
    }


def _cas_running(claim: Claim) -> Any:
    """The compare-and-set that records an outcome of exactly this attempt.

    A pure claim's statement takes turn_params(claim) when executed.
    """
    if claim.pure:
        return (
            update(ST)
            .where(*_pure_turn(claim.handed))
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


ET = Execution.__table__


LT = LifecycleEvent.__table__


def _lifecycle(session: Session, execution_id: str, event: str) -> None:
    session.connection().execute(
        insert(LT).values(execution_id=execution_id, event=event, created_at=utcnow())
    )


def execution_running(session: Session, execution_id: str) -> bool:
    """Whether the execution still runs (steps may still start)."""
    status = session.connection().execute(select(EC.status).where(EC.id == execution_id))
    return status.scalar_one_or_none() == RUNNING


def finish_execution(session: Session, execution_id: str) -> bool:
    """Mark a running execution succeeded (every end is terminal)."""
    now = utcnow()
    done = (
        session.connection()
        .execute(
            update(ET)
            .where(EC.id == execution_id, EC.status == RUNNING)
            .values(status=ExecutionStatus.SUCCEEDED.value, finished_at=now, updated_at=now)
            .returning(EC.id)
        )
        .first()
    )
    if done:
        _lifecycle(session, execution_id, "succeeded")
    return done is not None


_UNSET = object()


def end_reached(session: Session, execution_id: str, node_id: str, output: Any = _UNSET) -> bool:
    """Count an end node (with its output if it succeeded); True if it finished the run.

    One statement: the first end to succeed gives the execution its output, and the last
    one to arrive marks a still-running execution succeeded.
    """
    now = utcnow()
    last = and_(EC.ends_remaining <= 1, EC.status == RUNNING)
    values: dict[str, Any] = {
        "ends_remaining": EC.ends_remaining - 1,
        "status": case((last, ExecutionStatus.SUCCEEDED.value), else_=EC.status),
        "finished_at": case((last, now), else_=EC.finished_at),
        "updated_at": now,
    }
    if output is not _UNSET:
        first = EC.output_node.is_(None)
        values["output"] = case(
            (first, bindparam("b_output", output, type_=EC.output.type)), else_=EC.output
        )
        values["output_node"] = case((first, node_id), else_=EC.output_node)
    row = (
        session.connection()
        .execute(
            update(ET)
            .where(EC.id == execution_id)
            .values(**values)
            .returning(EC.ends_remaining, EC.status)
        )
        .one()
    )
    finished = row.ends_remaining == 0 and row.status == ExecutionStatus.SUCCEEDED.value
    if finished:
        _lifecycle(session, execution_id, "succeeded")
    return finished


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


def _pure_success(handed: bool) -> Any:
    """The one statement that records a pure step's success, built once per process.

    It runs for nearly every step, so it is a prepared construct with bound parameters:
    SQLAlchemy then reuses its cache key and compiled form instead of rebuilding both.
    """
    return (
        update(ST)
        .where(*_pure_turn(handed))
        .values(
            status=StepStatus.SUCCEEDED.value,
            attempts=bindparam("b_attempt"),
            started_at=bindparam("b_started", type_=SC.started_at.type),
            task_id=bindparam("b_task"),
            worker=bindparam("b_worker"),
            input=bindparam("b_input", type_=SC.input.type),
            output=bindparam("b_output", type_=SC.output.type),
            finished_at=bindparam("b_finished", type_=SC.finished_at.type),
            error=None,
            lease_expires_at=None,
            updated_at=bindparam("b_updated", type_=SC.updated_at.type),
            history=bindparam("b_history", type_=SC.history.type),
        )
        .returning(SC.id)
    )


PURE_SUCCESS = {False: _pure_success(False), True: _pure_success(True)}


def record_pure_success(
    session: Session, claim: Claim, output: Any, now: datetime, history: list[Any]
) -> bool:
    """Move a pure step from pending straight to succeeded, if it still is its turn."""
    row = (
        session.connection()
        .execute(
            PURE_SUCCESS[claim.handed],
            {
                **turn_params(claim),
                "b_attempt": claim.attempt,
                "b_started": claim.started_at,
                "b_task": claim.task_id,
                "b_worker": claim.worker,
                "b_input": claim.input,
                "b_output": output,
                "b_finished": now,
                "b_updated": now,
                "b_history": history,
            },
        )
        .first()
    )
    return row is not None


def _claim(takeover: bool) -> Any:
    """The compare-and-set that moves a step to running, built once per process.

    A running step is taken over only by the message that owns it (a redelivery after its
    worker died, or a re-queue that stamped its id on the row) or once its lease expired;
    a stale duplicate of a re-queued step is dropped instead of running it twice.
    """
    turn = SC.status == StepStatus.PENDING.value
    if takeover:
        turn = or_(
            turn,
            and_(
                SC.status == StepStatus.RUNNING.value,
                or_(SC.task_id == bindparam("b_task"), SC.lease_expires_at < bindparam("b_now")),
            ),
        )
    return (
        update(ST)
        .where(
            SC.execution_id == bindparam("b_eid"),
            SC.node_id == bindparam("b_nid"),
            turn,
            exists().where(EC.id == bindparam("b_eid2"), EC.status == RUNNING),
        )
        .values(
            status=StepStatus.RUNNING.value,
            attempts=SC.attempts + 1,
            started_at=bindparam("b_started", type_=SC.started_at.type),
            task_id=bindparam("b_task_id"),
            worker=bindparam("b_worker"),
            lease_expires_at=bindparam("b_lease", type_=SC.lease_expires_at.type),
            wake_at=None,
            updated_at=bindparam("b_updated", type_=SC.updated_at.type),
        )
        .returning(SC.attempts, SC.history)
    )


CLAIM = {False: _claim(False), True: _claim(True)}

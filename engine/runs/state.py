"""Shared pieces of the step record: table aliases, the Claim, compare-and-set helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, text, update
from sqlalchemy.orm import Session

from models import Execution, LifecycleEvent, StepExecution, utcnow

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


# Node types whose handler does no I/O and ends in milliseconds (jq is time-bounded).
PURE_TYPES = frozenset(
    {"start", "fork", "join", "transform", "condition", "end", "webhook_response"}
)


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
                # a handed-over claim assumed a fresh row: no earlier attempt in its history
                *([SC.history.is_(None)] if claim.handed else []),
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

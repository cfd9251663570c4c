"""Dead letters: replaying a dead-lettered step resumes its execution."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import DeadLetter, LifecycleEvent, utcnow

from ..errors import Conflict, NotFound
from ..states import ExecutionStatus, StepStatus
from .executions import resume_execution
from .state import E, S


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

"""Pure steps: prepared from reads alone, recorded by their one compare-and-set.

A pure node (engine/compiler.PURE_TYPES) does no I/O, so it is never written `running`:
its outcome moves the row straight from `pending`. The reads before it are cut too: the
output a predecessor handed over in the message, or nothing at all for a start node.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import utcnow

from ..semantics import StepView, predecessors_done
from ..states import StepStatus
from .cache import _execution_header, load_compiled, prev_usable
from .state import SC, Claim, Followups
from .steps import _decide


class _Row(NamedTuple):
    node_id: str
    status: str
    output: Any
    attempts: int
    history: Any


def prepare_pure_step(
    session: Session,
    execution_id: str,
    node_id: str,
    *,
    chords: bool,
    repair: bool = False,
    task_id: str | None = None,
    worker: str | None = None,
    prev: dict[str, Any] | None = None,
    assume_fresh: bool = True,
) -> tuple[Claim, Followups]:
    """Read what a pure step needs, writing nothing; its outcome is the step's one write.

    ``prev`` is the predecessor's output handed over in the message by the step before it
    in the same chain (see prev_usable): then nothing is read at all. Nor is anything read
    for a start node that needs no other step. Either way the row is assumed fresh, which
    the outcome's compare-and-set checks; ``assume_fresh=False`` reads it regardless.
    """
    now = utcnow()
    exe = _execution_header(session, execution_id)
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    wf = compiled.workflow
    node = wf.node_map[node_id]
    needs = compiled.needs.get(node_id)
    wanted = None if needs is None else set(wf.predecessors(node_id)) | needs | {node_id}
    handed = assume_fresh and (
        (prev is not None and prev_usable(compiled, node_id, prev["node"]))
        or (node_id == wf.start.id and needs == frozenset())
    )
    if handed and node_id == wf.start.id:
        rows = [_Row(node_id, StepStatus.PENDING.value, None, 0, None)]
    elif handed and prev is not None:
        # The predecessor handed its output over in this message: assume a fresh row
        # (attempt 1, no history); the outcome's CAS checks that, else the caller re-reads.
        rows = [
            _Row(prev["node"], StepStatus.SUCCEEDED.value, prev["output"], 1, None),
            _Row(node_id, StepStatus.PENDING.value, None, 0, None),
        ]
    else:
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
        handed=handed,
    )
    if not predecessors_done(wf, node_id, views):
        return Claim("drop", execution_id, node_id), Followups()
    return _decide(claim, views, exe.input), Followups()

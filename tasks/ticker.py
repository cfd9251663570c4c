"""The ticker: the periodic repair loop that makes lost messages harmless.

Runs in beat (``canvasflow beat``) or as a thread of the embedded mode. Every job is a
compare-and-set, so two tickers at once only duplicate messages the node CAS absorbs.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import or_, select, update

from engine import runs
from engine.semantics import StepView, predecessors_done
from engine.states import ExecutionStatus, StepStatus
from models import Execution, StepExecution, session_scope, utcnow
from settings import Settings

from .publish import publish_followups, publish_node, publish_region

log = logging.getLogger(__name__)
S = StepExecution
E = Execution
BATCH = 500


class Ticker:
    """Holds the little state the repair loop needs between ticks."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self.url = settings.effective_database_url
        self.last_scan = 0.0
        self.extra_jobs: list[
            Any
        ] = []  # cron triggers, heartbeats... (callables taking the ticker)

    def tick(self) -> dict[str, int]:
        """One pass of every repair job; returns how much each did."""
        stats = {
            "woken": self.wake_due_delays(),
            "retried": self.republish_parked_retries(),
            "leases": self.requeue_expired_leases(),
            "started": self.start_pending_executions(),
        }
        if time.monotonic() - self.last_scan >= self.settings.lost_message_seconds / 2:
            self.last_scan = time.monotonic()
            stats["lost"] = self.republish_lost_messages()
            stats["finished"] = self.finish_complete_executions()
        for job in self.extra_jobs:
            try:
                job(self)
            except Exception:
                log.exception("ticker job %r failed", job)
        return stats

    def wake_due_delays(self) -> int:
        now = utcnow()
        with session_scope(self.url) as s:
            due = s.execute(
                select(S.execution_id, S.node_id)
                .where(S.status == StepStatus.WAITING.value, S.wake_at <= now)
                .limit(BATCH)
            ).all()
        for eid, nid in due:
            with session_scope(self.url) as s:
                follow = runs.wake_step(s, eid, nid, chords=self.settings.native_chords)
                plan = self._plan(s, eid) if follow else None
            if follow and plan:
                publish_followups(self.app, plan, eid, follow)
        return len(due)

    def _plan(self, session: Any, execution_id: str) -> Any:
        exe = session.get(E, execution_id)
        return runs.load_compiled(
            session, exe.workflow_id, exe.workflow_version, self.settings.native_chords
        ).plan

    def republish_parked_retries(self) -> int:
        now = utcnow()
        with session_scope(self.url) as s:
            rows = s.execute(
                update(S)
                .where(
                    S.status == StepStatus.PENDING.value,
                    S.queued_at.is_(None),
                    S.wake_at.is_not(None),
                    S.wake_at <= now,
                )
                .values(queued_at=now)
                .returning(S.execution_id, S.node_id)
            ).all()
        for eid, nid in rows:
            publish_node(self.app, eid, nid)
        return len(rows)

    def requeue_expired_leases(self) -> int:
        now = utcnow()
        lease = timedelta(seconds=self.settings.lease_seconds)
        with session_scope(self.url) as s:
            rows = s.execute(
                update(S)
                .where(S.status == StepStatus.RUNNING.value, S.lease_expires_at < now)
                .values(lease_expires_at=now + lease, task_id=runs.requeue_stamp(now))
                .returning(S.execution_id, S.node_id, S.task_id)
            ).all()
        for eid, nid, task_id in rows:
            log.warning("lease expired: re-queueing %s of %s", nid, eid)
            publish_node(self.app, eid, nid, takeover=True, task_id=task_id)
        return len(rows)

    def republish_lost_messages(self) -> int:
        """Pending steps whose predecessors finished long ago: their message was lost."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.lost_message_seconds)
        with session_scope(self.url) as s:
            eids = (
                s.execute(
                    select(S.execution_id)
                    .join(E, E.id == S.execution_id)
                    .where(
                        E.status == ExecutionStatus.RUNNING.value,
                        S.status == StepStatus.PENDING.value,
                        S.remaining <= 0,
                        or_(S.queued_at.is_(None), S.queued_at < cutoff),
                        or_(S.wake_at.is_(None), S.wake_at < cutoff),
                    )
                    .distinct()
                    .limit(200)
                )
                .scalars()
                .all()
            )
        count = 0
        for eid in eids:
            with session_scope(self.url) as s:
                exe = s.get(E, eid)
                if exe is None:
                    continue
                compiled = runs.load_compiled(
                    s, exe.workflow_id, exe.workflow_version, self.settings.native_chords
                )
                rows = s.execute(
                    select(S.node_id, S.status, S.output, S.finished_at, S.queued_at).where(
                        S.execution_id == eid
                    )
                ).all()
                views = {r.node_id: StepView(r.status, r.output) for r in rows}
                lost = []
                for r in rows:
                    if r.status != StepStatus.PENDING.value or (
                        r.queued_at and r.queued_at >= cutoff
                    ):
                        continue
                    preds = compiled.workflow.predecessors(r.node_id)
                    if not predecessors_done(compiled.workflow, r.node_id, views):
                        continue
                    last = max(
                        (x.finished_at for x in rows if x.node_id in preds and x.finished_at),
                        default=None,
                    )
                    if last is None and r.node_id == compiled.workflow.start.id:
                        last = exe.started_at
                    if last is None or last < cutoff:
                        lost.append(r.node_id)
                if lost:
                    s.execute(
                        update(S)
                        .where(S.execution_id == eid, S.node_id.in_(lost))
                        .values(queued_at=now)
                    )
            for nid in lost:
                log.warning("lost message: republishing %s of %s", nid, eid)
                publish_node(self.app, eid, nid)
            count += len(lost)
        return count

    def finish_complete_executions(self) -> int:
        with session_scope(self.url) as s:
            ids = (
                s.execute(
                    select(E.id)
                    .where(E.status == ExecutionStatus.RUNNING.value, E.ends_remaining <= 0)
                    .limit(BATCH)
                )
                .scalars()
                .all()
            )
            for eid in ids:
                runs.finish_execution(s, eid)
        return len(ids)

    def start_pending_executions(self) -> int:
        """Executions held back by a workflow's max_concurrency start as others finish."""
        with session_scope(self.url) as s:
            started = runs.promote_pending(s)
            plans = {eid: self._plan(s, eid) for eid, _ in started}
        for eid, entry in started:
            publish_region(self.app, plans[eid], eid, entry)
        return len(started)

    def run_forever(self, stop: Any) -> None:
        """Tick every ``tick_seconds`` until ``stop`` (a threading.Event) is set."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("tick failed")
            stop.wait(self.settings.tick_seconds)

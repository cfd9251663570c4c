"""Cron triggers on the ticker: heartbeat, fire what is due, schedule what is new.

:func:`install` adds one job to a :class:`~tasks.ticker.Ticker`; beat runs it on every
tick (``canvasflow beat``), the embedded mode in its ticker thread (``canvasflow dev``).
The triggers table is read on each tick, so API changes apply without a restart.

Any number of beats may run at once. A due trigger is claimed with a compare-and-set::

    UPDATE triggers SET next_fire_at = :next, last_fired_at = :now
     WHERE id = :id AND next_fire_at = :old AND enabled

and only the beat whose update matched starts the execution, with ``scheduled_for`` =
the occurrence; ``UNIQUE(trigger_id, scheduled_for)`` on executions is the second guard.
If starting fails (database or broker down) the claim is handed back so a later tick
retries; a crash between the claim and the start loses that one occurrence.

In beat, SIGTERM/SIGINT stop beat at the end of the current tick rather than inside it:
celery's handler raises SystemExit wherever the main thread is, and inside a database
call SQLAlchemy turned that into an ordinary error the tick logged, so beat never
stopped (SIGKILL after the grace period). A second signal still stops at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select, update

from engine.cron import CronSchedule, InvalidCron, plan_fire
from engine.errors import NotFound
from models import Heartbeat, Trigger, session_scope, utcnow

from .service import start_execution

log = logging.getLogger(__name__)
T = Trigger
BATCH = 200
# Heartbeats are written at most this often (SQLite shares one writer with the worker).
HEARTBEAT_EVERY = 1.0
# Beat heartbeats unseen this long are deleted.
FORGET_AFTER = timedelta(days=1)


@lru_cache(maxsize=1024)
def schedule_for(expression: str, timezone: str) -> CronSchedule:
    """A parsed schedule, cached (the same triggers are read on every tick)."""
    return CronSchedule.parse(expression, timezone)


def trigger_schedule(config: dict[str, Any]) -> CronSchedule:
    """The schedule of a cron trigger's config; InvalidCron when it is unusable."""
    return schedule_for(str(config.get("cron", "")), str(config.get("timezone") or "UTC"))


class CronJob:
    """The per-tick job; counters end up in this process's heartbeat row."""

    def __init__(self, beat: bool) -> None:
        self.kind = "beat" if beat else "embedded"
        self.name = f"{self.kind}@{socket.gethostname()}:{os.getpid()}"
        self.started_at = utcnow()
        self.counts = {"fired": 0, "duplicates": 0, "skipped": 0, "lost_claims": 0, "errors": 0}
        self.last_beat = 0.0
        self.last_tick: datetime | None = None
        self.stop_requested = False

    def __call__(self, ticker: Any) -> None:
        now = utcnow()
        try:
            self.schedule_new(ticker.url, now)
            self.fire_due(ticker, now)
        finally:
            self.last_tick = now
            self.heartbeat(ticker, now)
        if self.stop_requested:
            log.warning("%s: stopping after this tick", self.name)
            self.forget(ticker.url)
            raise SystemExit()  # a BaseException: through the ticker to beat's own loop

    def forget(self, url: str) -> None:
        """Delete this process's heartbeat row (a clean stop, as workers do)."""
        try:
            with session_scope(url) as s:
                s.execute(delete(Heartbeat).where(Heartbeat.name == self.name))
        except Exception:  # the row goes stale and is forgotten later
            log.warning("%s: could not delete its heartbeat", self.name, exc_info=True)

    # -- (a) liveness --------------------------------------------------------------------------

    def heartbeat(self, ticker: Any, now: datetime, force: bool = False) -> None:
        """Upsert this process's ``beat`` heartbeat row (throttled to HEARTBEAT_EVERY)."""
        if not force and time.monotonic() - self.last_beat < HEARTBEAT_EVERY:
            return
        self.last_beat = time.monotonic()
        info = {
            "mode": self.kind,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "last_tick": now.isoformat(),
            "tick_seconds": ticker.settings.tick_seconds,
            **self.counts,
        }
        with session_scope(ticker.url) as s:
            updated = s.execute(
                update(Heartbeat)
                .where(Heartbeat.name == self.name)
                .values(kind="beat", info=info, last_seen=now)
            ).rowcount
            if not updated:
                s.add(
                    Heartbeat(
                        name=self.name,
                        kind="beat",
                        info=info,
                        started_at=self.started_at,
                        last_seen=now,
                    )
                )
                # Once per process start: forget beats that stopped long ago.
                s.execute(
                    delete(Heartbeat).where(
                        Heartbeat.kind == "beat", Heartbeat.last_seen < now - FORGET_AFTER
                    )
                )

    # -- (c) next fire times for new, changed and re-enabled triggers --------------------------

    def schedule_new(self, url: str, now: datetime) -> int:
        """Set next_fire_at on enabled cron triggers that have none; returns how many."""
        with session_scope(url) as s:
            rows = s.execute(
                select(T.id, T.config, T.updated_at)
                .where(T.type == "cron", T.enabled.is_(True), T.next_fire_at.is_(None))
                .limit(BATCH)
            ).all()
        count = 0
        for row in rows:
            try:
                next_fire_at = trigger_schedule(row.config).next_after(now)
            except InvalidCron as exc:
                log.error("cron trigger %s has an unusable schedule: %s", row.id, exc)
                continue
            with session_scope(url) as s:
                # updated_at in the WHERE: a config changed since we read it is left to the
                # next tick; keeping updated_at leaves it meaning "changed by a user".
                count += s.execute(
                    update(T)
                    .where(T.id == row.id, T.next_fire_at.is_(None), T.updated_at == row.updated_at)
                    .values(next_fire_at=next_fire_at, updated_at=T.updated_at)
                ).rowcount
        return count

    # -- (b) firing ----------------------------------------------------------------------------

    def fire_due(self, ticker: Any, now: datetime) -> int:
        """Claim and start every due cron trigger; returns how many executions started."""
        settings = ticker.settings
        grace = timedelta(seconds=max(10.0, 5 * settings.tick_seconds))
        with session_scope(ticker.url) as s:
            rows = s.execute(
                select(T.id, T.user_id, T.workflow_id, T.config, T.next_fire_at)
                .where(T.type == "cron", T.enabled.is_(True), T.next_fire_at <= now)
                .order_by(T.next_fire_at)
                .limit(BATCH)
            ).all()
        started = 0
        for row in rows:
            try:
                plan = plan_fire(
                    trigger_schedule(row.config),
                    row.next_fire_at,
                    now,
                    row.config.get("misfire") or "fire_once",
                    grace,
                )
            except (InvalidCron, ValueError) as exc:
                log.error("cron trigger %s has an unusable schedule: %s", row.id, exc)
                continue
            if not self._claim(ticker.url, row, plan.next_fire_at, now, plan.fire_for is not None):
                self.counts["lost_claims"] += 1  # another beat took this occurrence
                continue
            if plan.fire_for is None:
                self.counts["skipped"] += 1
                log.warning(
                    "cron trigger %s: skipped missed occurrences up to %s (misfire=skip)",
                    row.id,
                    row.next_fire_at.isoformat(),
                )
                continue
            if plan.missed:
                log.warning(
                    "cron trigger %s: missed occurrences since %s; firing once for %s",
                    row.id,
                    row.next_fire_at.isoformat(),
                    plan.fire_for.isoformat(),
                )
            started += self._start(ticker, row, plan.fire_for, plan.next_fire_at)
        return started

    def _claim(
        self, url: str, row: Any, next_fire_at: datetime, now: datetime, firing: bool
    ) -> bool:
        with session_scope(url) as s:
            return (
                s.execute(
                    update(T)
                    .where(T.id == row.id, T.next_fire_at == row.next_fire_at, T.enabled.is_(True))
                    .values(
                        next_fire_at=next_fire_at,
                        last_fired_at=now if firing else T.last_fired_at,
                        updated_at=T.updated_at,
                    )
                ).rowcount
                == 1
            )

    def _start(self, ticker: Any, row: Any, occurrence: datetime, next_fire_at: datetime) -> int:
        try:
            execution, created = start_execution(
                ticker.settings,
                ticker.app,
                user_id=row.user_id,
                workflow_id=row.workflow_id,
                input=row.config.get("input"),
                trigger_id=row.id,
                scheduled_for=occurrence,
            )
        except NotFound:
            self.counts["errors"] += 1
            log.warning(
                "cron trigger %s: workflow %s is gone; nothing started", row.id, row.workflow_id
            )
            return 0
        except Exception:
            self.counts["errors"] += 1
            log.exception("cron trigger %s: starting the execution failed; will retry", row.id)
            self._unclaim(ticker.url, row, next_fire_at)
            return 0
        if not created:  # the unique (trigger_id, scheduled_for) caught a second fire
            self.counts["duplicates"] += 1
            log.warning(
                "cron trigger %s: %s already fired as execution %s",
                row.id,
                occurrence.isoformat(),
                execution.id,
            )
            return 0
        self.counts["fired"] += 1
        log.info(
            "cron trigger %s fired execution %s for %s",
            row.id,
            execution.id,
            occurrence.isoformat(),
        )
        return 1

    def _unclaim(self, url: str, row: Any, next_fire_at: datetime) -> None:
        try:
            with session_scope(url) as s:
                s.execute(
                    update(T)
                    .where(T.id == row.id, T.next_fire_at == next_fire_at)
                    .values(next_fire_at=row.next_fire_at, updated_at=T.updated_at)
                )
        except Exception:
            log.exception("cron trigger %s: could not hand the claim back", row.id)


def defer_shutdown_signals(job: CronJob) -> None:
    """Make the first SIGTERM/SIGINT stop beat after the current tick (see the module doc)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            if job.stop_requested:  # asked twice: the original handler, at once
                previous(number, frame)
                return
            job.stop_requested = True

        signal.signal(signum, handler)


def install(ticker: Any, beat: bool) -> CronJob:
    """Add the cron job to ``ticker`` (once); ``beat`` names the heartbeat ``beat@...``.

    In beat (called after celery installed its signal handlers) shutdown signals are
    deferred to the end of a tick; the embedded mode leaves signals alone.
    """
    for job in ticker.extra_jobs:
        if isinstance(job, CronJob):
            return job
    job = CronJob(beat)
    ticker.extra_jobs.append(job)
    if beat:
        defer_shutdown_signals(job)
    return job

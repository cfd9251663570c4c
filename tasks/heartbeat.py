"""Worker liveness: heartbeat rows, and re-queueing the steps of workers that stopped.

Every worker process writes one ``heartbeats`` row (``kind="worker"``, ``name`` = its
Celery hostname, the value ``StepExecution.worker`` holds) from a background thread
started on ``worker_ready``, and deletes it on ``worker_shutdown``. The embedded engine
writes one for its thread pool (:func:`start_embedded`).

The ticker job :func:`requeue_steps_of_dead_workers` (installed by :func:`install`)
re-queues a ``running`` step whose worker has not heartbeated for
``settings.extra["heartbeat_timeout"]`` seconds (default 30), or restarted since it
claimed the step. The broker already redelivers a dead worker's unacked message
(acks_late); this catches what it cannot: a hung worker whose connection stays open,
and the embedded mode, whose in-memory messages die with the process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from engine import runs
from engine.states import StepStatus
from models import Heartbeat, StepExecution, session_scope, utcnow
from settings import Settings

from . import runtime

log = logging.getLogger(__name__)
S = StepExecution
H = Heartbeat
KIND = "worker"
# Rows of workers unseen this long are deleted by the ticker job.
FORGET_AFTER = timedelta(days=1)
# When this process (a worker main process, or the embedded engine's) started: a row whose
# started_at is later than a step's started_at belongs to a newer process of the same name.
PROCESS_STARTED = utcnow()


def heartbeat_timeout(settings: Settings) -> float:
    """Seconds without a heartbeat after which a worker counts as dead."""
    return float(settings.extra.get("heartbeat_timeout", 30))


def heartbeat_interval(settings: Settings) -> float:
    """Seconds between heartbeats: ``extra["heartbeat_interval"]`` (5), at most timeout / 3."""
    return min(float(settings.extra.get("heartbeat_interval", 5)), heartbeat_timeout(settings) / 3)


class HeartbeatWriter:
    """A daemon thread upserting one heartbeat row every ``interval`` seconds until stopped."""

    def __init__(
        self,
        url: str,
        name: str,
        info: Callable[[], dict[str, Any]],
        interval: float,
        started_at: datetime,
        stop: threading.Event | None = None,
        pooled: bool = True,
    ) -> None:
        self.url = url
        self.name = name
        self.info = info
        self.interval = interval
        self.started_at = started_at
        self.stop_event = stop or threading.Event()
        self.thread = threading.Thread(target=self._run, name="canvasflow-heartbeat", daemon=True)
        self._first = True
        # A forking worker (prefork pool) must not hand a pooled connection to its children.
        self._engine = None if pooled else _unpooled_engine(url)

    def start(self) -> HeartbeatWriter:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and delete the row: a clean shutdown is not a dead worker."""
        self.stop_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def beat(self) -> None:
        """Write the row once (the first write of a process also resets ``started_at``)."""
        now = utcnow()
        info = self.info()
        values: dict[str, Any] = {"kind": KIND, "info": info, "last_seen": now}
        if self._first:
            values["started_at"] = self.started_at
        with _FORK_LOCK, self._session() as s:
            updated = s.execute(update(H).where(H.name == self.name).values(**values)).rowcount
            if not updated:
                try:
                    with s.begin_nested():
                        s.add(
                            H(
                                name=self.name,
                                kind=KIND,
                                info=info,
                                started_at=self.started_at,
                                last_seen=now,
                            )
                        )
                except IntegrityError:  # another process of the same name inserted first
                    pass
        self._first = False

    def _session(self) -> Any:
        if self._engine is None:
            return session_scope(self.url)
        from sqlalchemy.orm import Session

        return _Scope(Session(self._engine))

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.beat()
            except Exception:  # the database may be down: keep trying, never kill the worker
                log.warning("heartbeat of %s failed", self.name, exc_info=True)
            self.stop_event.wait(self.interval)
        try:
            with _FORK_LOCK, self._session() as s:
                s.execute(delete(H).where(H.name == self.name, H.started_at == self.started_at))
        except Exception:
            log.warning("could not delete the heartbeat of %s", self.name, exc_info=True)


def _unpooled_engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    timeout = {"timeout": 30} if url.startswith("sqlite") else {"connect_timeout": 5}
    args = {"connect_args": timeout}
    return create_engine(url, poolclass=NullPool, **args)


class _Scope:
    """session_scope for a given Session: commit, or roll back on error; always close."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def __enter__(self) -> Any:
        return self.session

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()


# No fork while a heartbeat holds a connection: the child would inherit the open socket,
# and closing it there would end the parent's session. Bounded, so a hung database write
# cannot stop the pool from replacing a child for long.
_FORK_LOCK = threading.Lock()
_held_for_fork = False


def _before_fork() -> None:
    global _held_for_fork
    _held_for_fork = _FORK_LOCK.acquire(timeout=10)


def _after_fork_in_parent() -> None:
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _FORK_LOCK.release()


def _after_fork_in_child() -> None:
    global _FORK_LOCK, _held_for_fork
    _FORK_LOCK = threading.Lock()
    _held_for_fork = False


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def _active_requests() -> int:
    from celery.worker import state

    return len(state.active_requests)


# -- worker processes (`canvasflow worker`) -----------------------------------------------------

_writer: HeartbeatWriter | None = None


@worker_ready.connect
def _start_worker_heartbeat(sender: Any = None, **_: Any) -> None:
    """Begin beating once the worker consumes (``sender`` is its Consumer)."""
    global _writer
    settings = runtime.settings()
    consumer = sender
    hostname = getattr(consumer, "hostname", None) or f"worker@{os.getpid()}"
    pool = getattr(consumer, "pool", None)
    concurrency = getattr(pool, "num_processes", None) or getattr(
        getattr(consumer, "controller", None), "concurrency", None
    )
    app = getattr(consumer, "app", None)
    queues = sorted(app.amqp.queues.consume_from) if app is not None else [settings.queue_name]

    def info() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "concurrency": concurrency,
            "queues": queues,
            "active": _active_requests(),
        }

    if _writer is not None:
        _writer.stop()
    _writer = HeartbeatWriter(
        settings.effective_database_url,
        hostname,
        info,
        heartbeat_interval(settings),
        PROCESS_STARTED,
        pooled=False,
    ).start()


@worker_shutdown.connect
def _stop_worker_heartbeat(sender: Any = None, **_: Any) -> None:
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


# -- the embedded engine ------------------------------------------------------------------------


def start_embedded(engine: Any) -> threading.Thread:
    """Beat for an :class:`~tasks.embedded.EmbeddedEngine`'s worker until its stop event is set."""
    settings: Settings = engine.settings
    worker = engine.worker

    def info() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "concurrency": engine.concurrency,
            "queues": [settings.queue_name],
            "active": _active_requests(),
            "mode": "embedded",
        }

    writer = HeartbeatWriter(
        settings.effective_database_url,
        worker.hostname,
        info,
        heartbeat_interval(settings),
        utcnow(),
        stop=engine._stop,
    )
    return writer.start().thread


# -- the ticker job -------------------------------------------------------------------------------


def requeue_steps_of_dead_workers(ticker: Any) -> int:
    """Re-queue ``running`` steps whose worker stopped heartbeating; returns how many.

    A compare-and-set moves each step's lease forward before its message is published
    (``takeover=True``), so concurrent tickers publish once, and a step is re-queued at
    most once per timeout while no live worker claims it.
    """
    from .publish import publish_node

    settings: Settings = ticker.settings
    timeout = timedelta(seconds=heartbeat_timeout(settings))
    lease = timedelta(seconds=settings.lease_seconds)
    now = utcnow()
    alive = exists().where(
        H.name == S.worker, H.last_seen >= now - timeout, H.started_at <= S.started_at
    )
    with session_scope(ticker.url) as s:
        rows = s.execute(
            update(S)
            .where(
                S.status == StepStatus.RUNNING.value,
                S.worker.is_not(None),
                ~alive,
                # claimed (or re-queued) at least `timeout` ago
                or_(S.lease_expires_at.is_(None), S.lease_expires_at < now + lease - timeout),
            )
            .values(lease_expires_at=now + lease, updated_at=now, task_id=runs.requeue_stamp(now))
            .returning(S.execution_id, S.node_id, S.worker, S.task_id)
        ).all()
        s.execute(delete(H).where(H.kind == KIND, H.last_seen < now - FORGET_AFTER))
    for eid, nid, worker, task_id in rows:
        log.warning("worker %s stopped heartbeating: re-queueing %s of %s", worker, nid, eid)
        publish_node(ticker.app, eid, nid, takeover=True, task_id=task_id)
    return len(rows)


def install(ticker: Any) -> None:
    """Add :func:`requeue_steps_of_dead_workers` to ``ticker`` (once)."""
    if requeue_steps_of_dead_workers not in ticker.extra_jobs:
        ticker.extra_jobs.append(requeue_steps_of_dead_workers)


# -- reading ------------------------------------------------------------------------------------


def workers(settings: Settings, shown_for: timedelta = timedelta(hours=1)) -> list[dict[str, Any]]:
    """Workers seen within ``shown_for``, newest first: ``{name, last_seen, alive, info}``."""
    now = utcnow()
    timeout = timedelta(seconds=heartbeat_timeout(settings))
    with session_scope(settings.effective_database_url) as s:
        rows = (
            s.execute(
                select(H)
                .where(H.kind == KIND, H.last_seen >= now - shown_for)
                .order_by(H.last_seen.desc())
            )
            .scalars()
            .all()
        )
        return [
            {
                "name": r.name,
                "last_seen": r.last_seen,
                "started_at": r.started_at,
                "alive": r.last_seen >= now - timeout,
                "info": r.info,
            }
            for r in rows
        ]

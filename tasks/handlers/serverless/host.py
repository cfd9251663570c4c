"""DbHost: the interpreter's ``Host`` on Canvasflow, one per node run.

It owns what every effect shares (the clock, cancellation, the node's lease, secrets)
and hands each effect to its module: step rows to steps.py, HTTP to http_calls.py,
events to events.py, sub-workflows to subworkflows.py, processes to processes.py.
Effects that may take a while flush the buffered step rows first, so progress is
visible while they run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from engine import runs
from engine.states import ExecutionStatus, StepStatus
from models import Execution, StepExecution, session_scope

from ..env import HandlerEnv
from . import processes, subworkflows
from .events import events_after, start_cursor, store_event
from .http_calls import HttpCaller
from .steps import StepRows

S = StepExecution
CANCEL_CHECK_SECONDS = 0.25


@dataclass
class RunInfo:
    """What the host needs about the execution, read once per node run."""

    user_id: str
    workflow_id: str
    input: Any
    started_at: datetime
    workflow: Any
    interrupted: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def load(cls, env: HandlerEnv) -> RunInfo:
        """Read the execution, its compiled workflow and its interrupted nested tasks."""
        settings = env.settings
        with session_scope(settings.effective_database_url) as session:
            exe = session.execute(
                select(
                    Execution.user_id,
                    Execution.workflow_id,
                    Execution.workflow_version,
                    Execution.input,
                    Execution.started_at,
                    Execution.created_at,
                ).where(Execution.id == env.execution_id)
            ).one()
            compiled = runs.load_compiled(
                session, exe.workflow_id, exe.workflow_version, settings.native_chords
            )
            # Nested tasks left running by a worker that died: a listen resumes from there.
            interrupted = {
                r.node_id: r.started_at
                for r in session.execute(
                    select(S.node_id, S.started_at).where(
                        S.execution_id == env.execution_id,
                        S.status == StepStatus.RUNNING.value,
                        S.node_type.like("sw:%"),
                    )
                )
                if r.started_at is not None
            }
        return cls(
            exe.user_id,
            exe.workflow_id,
            exe.input,
            exe.started_at or exe.created_at,
            compiled.workflow,
            interrupted,
        )


class DbHost:
    """The interpreter's side effects on Canvasflow: step rows, HTTP, events, sub-workflows."""

    def __init__(self, env: HandlerEnv, run: RunInfo) -> None:
        self.env = env
        self.run = run
        self.settings = env.settings
        self.url = env.settings.effective_database_url
        self.secrets = dict(env.settings.extra.get("secrets") or {})
        self.allow_run = bool(env.settings.allow_run_tasks)
        self.steps = StepRows(self.url, env.execution_id)
        self.web = HttpCaller(env.settings, env.execution_id, env.node_id)
        self._last_check = 0.0
        self._last_lease = time.monotonic()
        self._cancelled = False

    # ------------------------------------------------------------------ clock and cancel

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Flush what is due, then sleep in this worker thread."""
        self.flush(force=False)
        time.sleep(max(0.0, seconds))

    def cancelled(self) -> bool:
        """The execution row says cancelled (checked at most every CANCEL_CHECK_SECONDS)."""
        now = time.monotonic()
        if self._cancelled or now - self._last_check < CANCEL_CHECK_SECONDS:
            return self._cancelled
        self._last_check = now
        with session_scope(self.url) as session:
            status = session.execute(
                select(Execution.status).where(Execution.id == self.env.execution_id)
            ).scalar_one_or_none()
            if now - self._last_lease > self.settings.lease_seconds / 3:
                # Long waits and listens keep the node's lease, so the ticker never re-runs it.
                self._last_lease = now
                session.execute(
                    update(S)
                    .where(
                        S.execution_id == self.env.execution_id,
                        S.node_id == self.env.node_id,
                        S.status == StepStatus.RUNNING.value,
                    )
                    .values(
                        lease_expires_at=self.now() + timedelta(seconds=self.settings.lease_seconds)
                    )
                )
        self._cancelled = status in (ExecutionStatus.CANCELLED.value, ExecutionStatus.FAILED.value)
        return self._cancelled

    # ------------------------------------------------------------------ step rows

    def record_step(
        self,
        pointer: str,
        kind: str,
        status: str,
        input: Any,
        output: Any,
        error: dict[str, Any] | None,
        started: datetime,
        finished: datetime | None,
    ) -> None:
        """Buffer one nested task's state; flushed in batches."""
        self.steps.record(pointer, kind, status, input, output, error, started, finished)

    def flush(self, force: bool = True) -> None:
        """Write the buffered rows in one short transaction."""
        self.steps.flush(force)

    def close(self) -> None:
        """Release this thread's HTTP session."""
        self.web.close()

    # ------------------------------------------------------------------ effects

    def http(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One HTTP exchange, SSRF-checked, never following redirects."""
        self.flush(force=False)
        return self.web.call(request, timeout)

    def emit(self, event: dict[str, Any]) -> None:
        """Store the event for this user; listeners of the same user see it."""
        store_event(self.url, self.run.user_id, event)

    def listen_cursor(self, pointer: str) -> Any:
        """Events from the listen's start (its first start, if a dead worker left it running)."""
        self.flush()
        return start_cursor(self.run.interrupted.get(pointer) or self.now())

    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        """The user's events after ``cursor``, oldest first."""
        return events_after(self.url, self.run.user_id, cursor)

    def run_workflow(
        self, namespace: str, name: str, version: str, input: Any, wait: bool, pointer: str
    ) -> Any:
        """Start the child execution and, if ``wait``, poll it to its end."""
        self.flush()
        return subworkflows.run_workflow(
            self.settings,
            user_id=self.run.user_id,
            parent_execution_id=self.env.execution_id,
            parent_node_id=pointer,
            namespace=namespace,
            name=name,
            version=version,
            input=input,
            wait=wait,
            cancelled=self.cancelled,
        )

    def run_process(self, kind: str, spec: dict[str, Any], pointer: str) -> dict[str, Any]:
        """``run: shell|script|container``; only called when settings.allow_run_tasks is on."""
        self.flush()
        return processes.run_process(kind, spec, pointer)

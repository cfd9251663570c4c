"""Nested tasks as step rows, buffered and written in short transactions.

Nested tasks become step rows of their own, named by their JSON pointer, with type
``sw:<kind>``: written straight as running/succeeded/failed/skipped/cancelled (never
pending: the ticker only repairs pending graph nodes), buffered and flushed in short
transactions at most every ``FLUSH_SECONDS``, so a 1,000-iteration ``for`` costs a few
writes. A task run several times (loop bodies, retries) keeps one row; ``attempts``
counts the runs and ``history`` keeps the last ``HISTORY_LIMIT`` of them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from engine.states import StepStatus
from models import StepExecution, session_scope

S = StepExecution
FLUSH_SECONDS = 0.5
HISTORY_LIMIT = 100


@dataclass
class _Row:
    kind: str
    status: str = StepStatus.RUNNING.value
    runs: int = 0
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class StepRows:
    """The nested tasks' step rows of one execution, buffered between flushes."""

    def __init__(self, url: str, execution_id: str) -> None:
        self.url = url
        self.execution_id = execution_id
        self._rows: dict[str, _Row] = {}
        self._dirty: set[str] = set()
        self._ids: dict[str, int] = {}
        self._base: dict[str, tuple[int, list[Any]]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_flush = time.monotonic()

    def record(
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
        with self._lock:
            row = self._rows.get(pointer)
            if row is None:
                row = self._rows[pointer] = _Row(kind)
            if status == StepStatus.RUNNING.value or row.status != StepStatus.RUNNING.value:
                row.runs += 1
                row.started_at = started
            row.kind, row.status, row.input = kind, status, input
            row.output, row.error, row.finished_at = output, error, finished
            if status != StepStatus.RUNNING.value:
                entry = {
                    "attempt": row.runs,
                    "status": status,
                    "started_at": _iso(row.started_at),
                    "finished_at": _iso(finished),
                }
                if error is not None:
                    entry["error"] = error
                row.history.append(entry)
                del row.history[:-HISTORY_LIMIT]
            self._dirty.add(pointer)
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self, force: bool = True) -> None:
        """Write the buffered rows in one short transaction."""
        if not self._dirty or (
            not force and time.monotonic() - self._last_flush < FLUSH_SECONDS / 5
        ):
            return
        with self._flush_lock:
            with self._lock:
                batch = {
                    p: _Row(
                        r.kind,
                        r.status,
                        r.runs,
                        r.input,
                        r.output,
                        r.error,
                        r.started_at,
                        r.finished_at,
                        list(r.history),
                    )
                    for p, r in self._rows.items()
                    if p in self._dirty
                }
                self._dirty.clear()
                self._last_flush = time.monotonic()
            if batch:
                self._write(batch)

    def _write(self, batch: dict[str, _Row]) -> None:
        eid = self.execution_id
        with session_scope(self.url) as session:
            unknown = [p for p in batch if p not in self._ids]
            for start in range(0, len(unknown), 500):
                chunk = unknown[start : start + 500]
                for r in session.execute(
                    select(S.id, S.node_id, S.attempts, S.history).where(
                        S.execution_id == eid, S.node_id.in_(chunk)
                    )
                ):
                    self._ids[r.node_id] = r.id
                    self._base[r.node_id] = (r.attempts or 0, list(r.history or []))
            now = datetime.now(UTC)
            inserts, updates = [], []
            for pointer, row in batch.items():
                attempts, history = self._base.get(pointer, (0, []))
                values = {
                    "node_type": row.kind[:50],
                    "status": row.status,
                    "attempts": attempts + row.runs,
                    "input": row.input,
                    "output": row.output,
                    "error": row.error,
                    "started_at": row.started_at,
                    "finished_at": row.finished_at,
                    "history": (history + row.history)[-HISTORY_LIMIT:],
                    "updated_at": now,
                }
                if pointer in self._ids:
                    updates.append({"id": self._ids[pointer], **values})
                else:
                    inserts.append(
                        {"execution_id": eid, "node_id": pointer, "remaining": 0, **values}
                    )
            if inserts:
                for r in session.execute(insert(S).returning(S.id, S.node_id), inserts):
                    self._ids[r.node_id] = r.id
            if updates:
                session.execute(update(S), updates)

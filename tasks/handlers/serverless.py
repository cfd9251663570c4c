"""sw_task: run Serverless Workflow tasks with ``engine.serverless`` on a real host.

A node is one top-level task (``/do/3/charge``) or, when the root list jumps around, the
whole list (``/do``). Between nodes travels an envelope ``{output, context, flow}``: the
task output, ``$context`` after ``export.as``, and ``end`` when a nested ``then: end``
finished the workflow early (later nodes then pass the envelope on without running).
The first node applies the workflow's input schema and ``input.from``, the last its
``output.as`` and output schema, so the end node's output is the workflow output.

Nested tasks become step rows of their own, named by their JSON pointer, with type
``sw:<kind>``: written straight as running/succeeded/failed/skipped/cancelled (never
pending: the ticker only repairs pending graph nodes), buffered and flushed in short
transactions at most every ``FLUSH_SECONDS``, so a 1,000-iteration ``for`` costs a few
writes. A task run several times (loop bodies, retries) keeps one row; ``attempts``
counts the runs and ``history`` keeps the last ``HISTORY_LIMIT`` of them.

Known limits: ``wait`` sleeps in the worker thread (the node's lease is renewed while it
does) and waits longer than ``settings.extra["sw_max_wait_seconds"]`` (default one hour)
are refused; ``listen`` polls the events table; ``run: workflow`` polls the child
execution while holding a worker thread.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import insert, select, update

from engine import runs
from engine.errors import StepError
from engine.graph import Node
from engine.serverless import Cancelled, Runner, WorkflowError
from engine.states import ExecutionStatus, StepStatus
from models import CloudEvent, Execution, StepExecution, Workflow, WorkflowVersion, session_scope

from . import ssrf
from .env import HandlerEnv

log = logging.getLogger(__name__)
S = StepExecution
FLUSH_SECONDS = 0.5
CANCEL_CHECK_SECONDS = 0.25
HISTORY_LIMIT = 100
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
POLL_SECONDS = 0.25
DEFAULT_MAX_WAIT_SECONDS = 3600.0


def handle(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    """Run the node's task (or the whole root list) and return the envelope for the next node."""
    run = _RunInfo.load(env)
    document = run.workflow.meta["document"]
    sw_nodes = [n.id for n in run.workflow.nodes if n.type == "sw_task"]
    first, last = sw_nodes[0] == node.id, sw_nodes[-1] == node.id
    whole = node.id == "/do"
    host = DbHost(env, run)
    runner = Runner(
        document,
        host,
        execution_id=env.execution_id,
        workflow_input=run.input,
        started_at=run.started_at,
        own_pointer=None if whole else node.id,
        max_wait_seconds=float(
            env.settings.extra.get("sw_max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS)
        ),
    )
    try:
        if first:
            raw, flow = runner.workflow_input(data), None
        else:
            envelope = data if isinstance(data, dict) else {}
            raw, flow = envelope.get("output"), envelope.get("flow")
            runner.context = envelope.get("context", {})
        if flow != "end":
            scope = runner.workflow_scope(run.started_at)
            if whole:
                outcome = runner.run_list(document["do"], "/do", raw, scope)
                raw, flow = outcome.output, "end" if outcome.end else None
            else:
                raw, then = runner.run_task(
                    node.config["name"], node.config["task"], node.id, raw, scope
                )
                flow = "end" if then in ("end", "exit") else None
        if last:
            raw = runner.workflow_output(raw)
    except WorkflowError as exc:
        host.flush()
        problem = exc.to_dict()
        raise StepError(
            exc.detail or exc.title or exc.type, error_type=exc.type, details=problem
        ) from None
    except Cancelled:
        host.flush()
        # The execution was cancelled: the step's CAS to succeeded fails and the task stops.
        return {"output": None, "context": runner.context, "flow": "end"}
    finally:
        host.close()
    host.flush()
    return {"output": raw, "context": runner.context, "flow": flow}


@dataclass
class _RunInfo:
    """What the host needs about the execution, read once per node run."""

    user_id: str
    workflow_id: str
    input: Any
    started_at: datetime
    workflow: Any
    interrupted: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def load(cls, env: HandlerEnv) -> _RunInfo:
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


class DbHost:
    """The interpreter's side effects on Canvasflow: step rows, HTTP, events, sub-workflows."""

    def __init__(self, env: HandlerEnv, run: _RunInfo) -> None:
        self.env = env
        self.run = run
        self.settings = env.settings
        self.url = env.settings.effective_database_url
        self.secrets = dict(env.settings.extra.get("secrets") or {})
        self.allow_run = bool(env.settings.allow_run_tasks)
        self._rows: dict[str, _Row] = {}
        self._dirty: set[str] = set()
        self._ids: dict[str, int] = {}
        self._base: dict[str, tuple[int, list[Any]]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._last_check = 0.0
        self._last_lease = time.monotonic()
        self._cancelled = False
        self._calls: dict[str, int] = {}
        self._local = threading.local()

    # ------------------------------------------------------------------ clock and cancel

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
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
        eid = self.env.execution_id
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
            now = self.now()
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

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ HTTP

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def _target(self, uri: str) -> str:
        """Where the request really goes: ``settings.extra["host_overrides"]`` (tests only)."""
        overrides = self.settings.extra.get("host_overrides") or {}
        parts = urlsplit(uri)
        base = overrides.get((parts.hostname or "").lower())
        if not base:
            return uri
        return base.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def http(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One HTTP exchange, SSRF-checked, never following redirects."""
        self.flush(force=False)
        uri = str(request["uri"])
        target = self._target(uri)
        method = str(request["method"]).upper()
        try:
            ssrf.check_url(target, self.settings)
        except StepError as exc:
            kind = "configuration" if exc.error_type == "invalid_url" else "communication"
            raise WorkflowError.standard(
                kind, exc.detail, status=403 if kind == "communication" else None
            ) from None
        with self._lock:
            count = self._calls[uri] = self._calls.get(uri, 0) + 1
        headers = {
            "Idempotency-Key": f"{self.env.execution_id}:{self.env.node_id}:{uri}:{count}",
            **request.get("headers", {}),
        }
        kwargs: dict[str, Any] = {}
        body = request.get("body")
        if isinstance(body, str | bytes):
            kwargs["data"] = body.encode() if isinstance(body, str) else body
        elif body is not None:
            kwargs["json"] = body
        try:
            resp = self._session().request(
                method,
                target,
                headers=headers,
                timeout=max(0.001, timeout),
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            try:
                chunks, size = [], 0
                for chunk in resp.iter_content(65536):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise WorkflowError.standard(
                            "communication",
                            f"{method} {uri}: response larger than {MAX_RESPONSE_BYTES} bytes",
                        )
                    chunks.append(chunk)
            finally:
                resp.close()
        except requests.Timeout:
            raise WorkflowError.standard(
                "timeout", f"{method} {uri} timed out after {timeout:.1f}s"
            ) from None
        except requests.RequestException as exc:
            raise WorkflowError.standard(
                "communication",
                f"{method} {uri} failed: {exc}",
                status=503,
                title="Service Unavailable",
            ) from None
        return {
            "statusCode": resp.status_code,
            "headers": dict(resp.headers),
            "content": b"".join(chunks),
        }

    # ------------------------------------------------------------------ events

    def emit(self, event: dict[str, Any]) -> None:
        """Store the event for this user; listeners of the same user see it."""
        with session_scope(self.url) as session:
            session.add(
                CloudEvent(
                    user_id=self.run.user_id,
                    event_id=str(event.get("id"))[:255],
                    source=str(event.get("source") or "")[:500] or None,
                    type=str(event.get("type") or "")[:255] or None,
                    data=event,
                )
            )

    def listen_cursor(self, pointer: str) -> Any:
        """Events from the listen's start (its first start, if a dead worker left it running)."""
        self.flush()
        return (self.run.interrupted.get(pointer) or self.now(), 0)

    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        """The user's events after ``cursor``, oldest first."""
        since, last_id = cursor
        with session_scope(self.url) as session:
            rows = session.execute(
                select(CloudEvent.id, CloudEvent.data)
                .where(
                    CloudEvent.user_id == self.run.user_id,
                    CloudEvent.created_at >= since,
                    CloudEvent.id > last_id,
                )
                .order_by(CloudEvent.id)
                .limit(500)
            ).all()
        if not rows:
            return [], cursor
        return [r.data for r in rows if isinstance(r.data, dict)], (since, rows[-1].id)

    # ------------------------------------------------------------------ sub-workflows

    def _find_workflow(self, namespace: str, name: str, version: str) -> tuple[str, int]:
        with session_scope(self.url) as session:
            rows = session.execute(
                select(Workflow.id, WorkflowVersion.version, WorkflowVersion.definition)
                .join(WorkflowVersion, WorkflowVersion.workflow_id == Workflow.id)
                .where(
                    Workflow.user_id == self.run.user_id,
                    Workflow.deleted_at.is_(None),
                    WorkflowVersion.format == "serverless",
                )
                .order_by(WorkflowVersion.created_at.desc(), WorkflowVersion.version.desc())
            ).all()
        for row in rows:
            doc = (row.definition or {}).get("document") or {}
            if (
                doc.get("name") == name
                and (not namespace or doc.get("namespace") == namespace)
                and (version in ("", "latest") or str(doc.get("version")) == version)
            ):
                return row.id, row.version
        raise WorkflowError.standard(
            "configuration", f"no workflow {namespace}/{name}:{version} is defined for this user"
        )

    def run_workflow(
        self, namespace: str, name: str, version: str, input: Any, wait: bool, pointer: str
    ) -> Any:
        """Start the child execution and, if ``wait``, poll it to its end."""
        from tasks.celery_app import celery_app  # the worker's configured app
        from tasks.service import start_execution

        self.flush()
        workflow_id, number = self._find_workflow(namespace, name, version)
        child, _ = start_execution(
            self.settings,
            celery_app,
            user_id=self.run.user_id,
            workflow_id=workflow_id,
            input=input,
            version=number,
            parent_execution_id=self.env.execution_id,
            parent_node_id=pointer,
        )
        if not wait:
            return None
        while True:
            with session_scope(self.url) as session:
                row = session.execute(
                    select(Execution.status, Execution.output, Execution.error).where(
                        Execution.id == child.id
                    )
                ).one()
            if row.status == ExecutionStatus.SUCCEEDED.value:
                return row.output
            if row.status in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value):
                details = (row.error or {}).get("details") if isinstance(row.error, dict) else None
                if isinstance(details, dict) and "type" in details and "status" in details:
                    raise WorkflowError.from_dict(details)
                raise WorkflowError.standard(
                    "runtime", f"sub-workflow {name} (execution {child.id}) ended {row.status}"
                )
            if self.cancelled():
                with session_scope(self.url) as session:
                    try:
                        runs.cancel_execution(session, child.id)
                    except Exception:  # already finished: nothing to cancel
                        log.debug("child %s not cancelled", child.id, exc_info=True)
                raise Cancelled()
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------ processes

    def run_process(self, kind: str, spec: dict[str, Any], pointer: str) -> dict[str, Any]:
        """``run: shell|script|container``; only called when settings.allow_run_tasks is on."""
        self.flush()
        environment = {str(k): str(v) for k, v in (spec.get("environment") or {}).items()}
        if kind == "shell":
            args = spec.get("arguments")
            command = [str(spec.get("command") or "")]
            if isinstance(args, list):
                command += [str(a) for a in args]
            elif isinstance(args, dict):
                command += [f"{k}={v}" for k, v in args.items()]
            argv, shell = (" ".join(command), True)
        elif kind == "script":
            language = str(spec.get("language") or "").lower()
            code = spec.get("code")
            if not isinstance(code, str):
                raise WorkflowError.standard(
                    "configuration",
                    "run: script needs inline code (external sources are not fetched)",
                    instance=pointer,
                )
            if language == "python":
                argv, shell = [sys.executable, "-c", code], False
            elif language in ("js", "javascript") and shutil.which("node"):
                argv, shell = ["node", "-e", code], False
            else:
                raise WorkflowError.standard(
                    "configuration",
                    f"run: script language {language!r} has no interpreter on this worker",
                    instance=pointer,
                )
        else:
            if not shutil.which("docker"):
                raise WorkflowError.standard(
                    "configuration",
                    "run: container needs docker on the worker, and this worker has none",
                    instance=pointer,
                )
            image = str(spec.get("image") or "")
            argv, shell = (
                ["docker", "run", "--rm", image]
                + ([str(spec["command"])] if spec.get("command") else []),
                False,
            )
        try:
            done = subprocess.run(
                argv,
                shell=shell,
                capture_output=True,
                text=True,
                timeout=3600,
                env=environment or None,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WorkflowError.standard(
                "runtime", f"run: {kind} failed: {exc}", instance=pointer
            ) from None
        return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

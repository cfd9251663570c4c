"""Run workflows on a real engine, embedded or on RabbitMQ + PostgreSQL + Redis.

The RabbitMQ harness starts real `canvasflow worker` and `canvasflow beat` processes with
a queue name of its own, so tests never share a queue with anyone else on the broker.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

import migrations
from engine import runs
from engine.states import EXECUTION_TERMINAL
from models import Execution, User, Workflow, WorkflowVersion, get_engine, session_scope
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Result:
    id: str
    status: str
    output: Any
    error: Any
    steps: dict[str, dict[str, Any]]
    response: Any = None

    def step(self, node_id: str) -> dict[str, Any]:
        return self.steps[node_id]

    def statuses(self) -> dict[str, str]:
        return {k: v["status"] for k, v in self.steps.items()}


@dataclass
class Harness:
    mode: str
    settings: Settings
    app: Any
    user_id: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    engine: Any = None
    logdir: Path | None = None

    def workflow(
        self, definition: dict[str, Any], name: str = "wf", max_concurrency: int | None = None
    ) -> str:
        from engine.definitions import load_definition

        load_definition(definition)  # a test definition must be valid
        with session_scope(self.settings.effective_database_url) as s:
            wf = Workflow(
                user_id=self.user_id, name=name, version=1, max_concurrency=max_concurrency
            )
            s.add(wf)
            s.flush()
            s.add(WorkflowVersion(workflow_id=wf.id, version=1, definition=definition))
            return wf.id

    def start(self, workflow_id: str, input: Any = None, idempotency_key: str | None = None) -> str:
        from tasks.service import start_execution

        execution, _ = start_execution(
            self.settings,
            self.app,
            user_id=self.user_id,
            workflow_id=workflow_id,
            input=input,
            idempotency_key=idempotency_key,
        )
        return execution.id

    def result(self, execution_id: str) -> Result:
        with session_scope(self.settings.effective_database_url) as s:
            e = s.get(Execution, execution_id)
            assert e is not None
            steps = {
                st.node_id: {
                    "status": st.status,
                    "attempts": st.attempts,
                    "input": st.input,
                    "output": st.output,
                    "error": st.error,
                    "started_at": st.started_at,
                    "finished_at": st.finished_at,
                    "history": st.history,
                }
                for st in runs.steps_of(s, execution_id)
            }
            return Result(e.id, e.status, e.output, e.error, steps, e.response)

    def wait(
        self, execution_id: str, timeout: float = 30.0, until: set[str] | None = None
    ) -> Result:
        """Poll until the execution is in ``until`` (default: any terminal status)."""
        wanted = until or {s.value for s in EXECUTION_TERMINAL}
        deadline = time.monotonic() + timeout
        while True:
            with session_scope(self.settings.effective_database_url) as s:
                status = s.execute(
                    select(Execution.status).where(Execution.id == execution_id)
                ).scalar_one()
            if status in wanted:
                return self.result(execution_id)
            if time.monotonic() > deadline:
                res = self.result(execution_id)
                raise AssertionError(
                    f"execution {execution_id} still {status} after {timeout}s: {res.statuses()}"
                    + self._logs()
                )
            time.sleep(0.02)

    def run(self, definition: dict[str, Any], input: Any = None, timeout: float = 30.0) -> Result:
        return self.wait(self.start(self.workflow(definition), input), timeout)

    def _logs(self) -> str:
        if not self.logdir:
            return ""
        out = []
        for f in sorted(self.logdir.glob("*.log")):
            out.append(
                f"\n--- {f.name} (tail) ---\n"
                + "\n".join(f.read_text(errors="replace").splitlines()[-30:])
            )
        return "".join(out)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        for p in self.procs:
            stop_process(p)
        self.procs.clear()
        if self.mode == "rabbitmq":
            from tasks.queues import delete_queues

            delete_queues(self.app)


def stop_process(p: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def make_user(settings: Settings) -> str:
    with session_scope(settings.effective_database_url) as s:
        user = User(name=f"it-{secrets.token_hex(4)}")
        s.add(user)
        s.flush()
        return user.id


def embedded_harness(tmp: Path, **overrides: Any) -> Harness:
    from tasks.embedded import EmbeddedEngine

    fields: dict[str, Any] = {
        "data_dir": tmp,
        "action_allow_private": True,
        "tick_seconds": 0.1,
        "lost_message_seconds": 3,
    }
    settings = Settings(**{**fields, **overrides})
    migrations.upgrade(settings.effective_database_url)
    engine = EmbeddedEngine(settings).start()
    h = Harness("embedded", settings, engine.app, make_user(settings), engine=engine)
    return h


def create_pg_database(base_url: str) -> str:
    import psycopg

    name = f"cf_it_{secrets.token_hex(4)}"
    dsn = base_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(base_url: str, url: str) -> None:
    import psycopg

    get_engine(url).dispose()
    name = url.rsplit("/", 1)[1]
    dsn = base_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def service_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CANVASFLOW_DATABASE_URL": settings.database_url,
            "CANVASFLOW_BROKER_URL": settings.broker_url,
            "CANVASFLOW_RESULT_BACKEND": settings.result_backend,
            "CANVASFLOW_QUEUE": settings.queue_name,
            "CANVASFLOW_QUEUE_TYPE": settings.queue_type,
            "CANVASFLOW_ACTION_ALLOW_PRIVATE": "1",
            "CANVASFLOW_TICK_SECONDS": str(settings.tick_seconds),
            "CANVASFLOW_LOST_MESSAGE_SECONDS": str(settings.lost_message_seconds),
            "CANVASFLOW_SHORT_DELAY_SECONDS": str(settings.short_delay_seconds),
            "CANVASFLOW_LEASE_SECONDS": str(settings.lease_seconds),
            "CANVASFLOW_BATCH_NODES": str(settings.batch_nodes),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_worker(
    settings: Settings,
    logdir: Path,
    name: str = "worker",
    concurrency: int = 4,
    extra: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    log = open(logdir / f"{name}.log", "ab")
    return subprocess.Popen(
        [
            str(BIN / "canvasflow"),
            "worker",
            "-c",
            str(concurrency),
            "-l",
            "WARNING",
            "-n",
            f"{name}-{secrets.token_hex(3)}@%h",
            *(extra or []),
        ],
        env=service_env(settings),
        cwd=str(ROOT),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def start_beat(settings: Settings, logdir: Path, name: str = "beat") -> subprocess.Popen[bytes]:
    log = open(logdir / f"{name}.log", "ab")
    return subprocess.Popen(
        [
            str(BIN / "canvasflow"),
            "beat",
            "-l",
            "WARNING",
            "-s",
            str(logdir / f"{name}-schedule"),
            "--pidfile",
            str(logdir / f"{name}.pid"),
        ],
        env=service_env(settings),
        cwd=str(ROOT),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def rabbitmq_harness(
    tmp: Path,
    pg_base: str,
    amqp: str,
    redis_url: str,
    workers: int = 1,
    concurrency: int = 4,
    worker_extra: list[str] | None = None,
    **overrides: Any,
) -> Harness:
    """A fresh PostgreSQL database, a queue of its own, real worker(s) and beat."""
    from tasks.celery_app import configure

    db_url = create_pg_database(pg_base)
    fields: dict[str, Any] = {
        "data_dir": tmp,
        "database_url": db_url,
        "broker_url": amqp,
        "result_backend": redis_url,
        "queue_name": f"cf_it_{secrets.token_hex(4)}",
        "action_allow_private": True,
        "tick_seconds": 0.2,
        "lost_message_seconds": 3,
    }
    settings = Settings(**{**fields, **overrides})
    migrations.upgrade(db_url)
    app = configure(settings)
    h = Harness("rabbitmq", settings, app, make_user(settings), logdir=tmp)
    for i in range(workers):
        h.procs.append(
            start_worker(
                settings, tmp, name=f"worker{i}", concurrency=concurrency, extra=worker_extra
            )
        )
    h.procs.append(start_beat(settings, tmp))
    # Wait until a worker consumes: a one-node workflow must finish.
    probe = h.workflow(
        {
            "nodes": [{"id": "s", "type": "start"}, {"id": "e", "type": "end"}],
            "edges": [{"source": "s", "target": "e"}],
        },
        name="probe",
    )
    h.wait(h.start(probe), timeout=60)
    return h

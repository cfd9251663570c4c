"""Fault tests against real processes on private servers (DESIGN.md, crash recovery table).

1. SIGKILL a worker (its whole process group) in the middle of a burst, start another:
   every execution succeeds, every step ran, and the upstream saw a repeated
   Idempotency-Key only for the steps the killed worker had in flight.
2. Restart RabbitMQ during a run: executions complete once it is back.
3. Stop PostgreSQL: the API answers 503 problem+json (never 500); once it is back, every
   execution accepted before is still there and completes.

Each scenario uses its own database and queue on the module's private PostgreSQL and
RabbitMQ, and reports its figures (executions, kills or outages, lost, repeated calls).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import migrations
from app import create_app
from app.auth import create_api_key
from models import Execution, Heartbeat, StepExecution, get_engine, session_scope
from settings import Settings
from tests.faults.conftest import report
from tests.support.harness import (
    BIN,
    ROOT,
    Harness,
    make_user,
    service_env,
    start_beat,
    stop_process,
)
from tests.support.private_services import PrivatePostgres, PrivateRabbitMQ
from tests.support.upstream import Upstream

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(240)]

STEPS = ("s", "prepare", "call", "finish", "e")
# pids of the workers started here, each the leader of its own process group
GROUPS: set[int] = set()


def workflow(upstream: Upstream, ms: int) -> dict[str, Any]:
    """Five steps, the middle one an action on the upstream's /slow route."""
    nodes = [
        {"id": "s", "type": "start"},
        {"id": "prepare", "type": "transform", "config": {"expression": "{n: .input.n}"}},
        {
            "id": "call",
            "type": "action",
            "config": {"method": "GET", "url": f"{upstream.url}/slow?ms={ms}"},
        },
        {"id": "finish", "type": "transform", "config": {"expression": ".steps.call.output.body"}},
        {"id": "e", "type": "end"},
    ]
    edges = [{"source": a, "target": b} for a, b in zip(STEPS, STEPS[1:], strict=False)]
    return {"nodes": nodes, "edges": edges}


def spawn_worker(
    settings: Settings, logdir: Path, name: str, concurrency: int = 4
) -> tuple[subprocess.Popen[bytes], str]:
    """A `canvasflow worker` in a process group of its own (main process + pool children)."""
    tag = f"{name}-{secrets.token_hex(3)}"
    log = open(logdir / f"{tag}.log", "ab")
    proc = subprocess.Popen(
        [
            str(BIN / "canvasflow"),
            "worker",
            "-c",
            str(concurrency),
            "-l",
            "WARNING",
            "-n",
            f"{tag}@%h",
        ],
        env=service_env(settings),
        cwd=str(ROOT),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    GROUPS.add(proc.pid)
    return proc, tag


def wait_until(predicate: Any, timeout: float, what: str, h: Harness | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}" + (h._logs() if h else "")
            )
        time.sleep(0.05)


def heartbeating(settings: Settings, tag: str) -> bool:
    """The worker ``tag`` wrote its heartbeat row: it is consuming."""
    with session_scope(settings.effective_database_url) as s:
        return (
            s.execute(select(Heartbeat.name).where(Heartbeat.name.like(f"{tag}@%"))).first()
            is not None
        )


def statuses(settings: Settings, ids: list[str]) -> Counter[str]:
    with session_scope(settings.effective_database_url) as s:
        return Counter(s.execute(select(Execution.status).where(Execution.id.in_(ids))).scalars())


def step_counts(settings: Settings, ids: list[str]) -> Counter[tuple[str, str]]:
    with session_scope(settings.effective_database_url) as s:
        rows = s.execute(
            select(StepExecution.node_id, StepExecution.status).where(
                StepExecution.execution_id.in_(ids)
            )
        ).all()
    return Counter((node, status) for node, status in rows)


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest,
    private_pg: PrivatePostgres,
    private_mq: PrivateRabbitMQ,
    result_backend: str,
    tmp_path: Path,
) -> Iterator[Any]:
    """Build a harness on a fresh private database and queue: ``scenario(**settings)``."""
    harnesses: list[Harness] = []

    def build(**overrides: Any) -> Harness:
        from tasks.celery_app import configure

        db_url = private_pg.create_database(f"cf_fault_{secrets.token_hex(4)}")
        settings = Settings(
            data_dir=tmp_path,
            database_url=db_url,
            broker_url=private_mq.url,
            result_backend=result_backend,
            queue_name=f"cf_fault_{secrets.token_hex(4)}",
            action_allow_private=True,
            tick_seconds=0.2,
            lost_message_seconds=3,
            **overrides,
        )
        migrations.upgrade(db_url)
        h = Harness("rabbitmq", settings, configure(settings), make_user(settings), logdir=tmp_path)
        harnesses.append(h)
        return h

    yield build
    for h in harnesses:
        for p in h.procs:
            stop_process(p)
            if p.pid in GROUPS:  # pool children of a worker that did not stop cleanly
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        h.procs.clear()
        get_engine(h.settings.effective_database_url).dispose()


def start_workers(h: Harness, name: str, beat: bool = True) -> str:
    proc, tag = spawn_worker(h.settings, h.logdir or Path("."), name)
    h.procs.append(proc)
    if beat:
        h.procs.append(start_beat(h.settings, h.logdir or Path("."), name=f"beat-{tag}"))
    wait_until(lambda: heartbeating(h.settings, tag), 60, f"worker {tag} to start", h)
    return tag


def test_sigkill_a_worker_mid_burst(scenario: Any, fault_upstream: Upstream) -> None:
    h = scenario(lease_seconds=60)
    first = start_workers(h, "doomed")
    wid = h.workflow(workflow(fault_upstream, ms=200))
    began = time.monotonic()
    ids = [h.start(wid, {"n": i}) for i in range(30)]
    url = h.settings.effective_database_url

    def mid_burst() -> bool:
        done = step_counts(h.settings, ids)
        return done[("call", "succeeded")] >= 6 and done[("call", "running")] >= 1

    wait_until(mid_burst, 60, "the burst to be under way", h)
    doomed = h.procs[0]
    os.killpg(doomed.pid, signal.SIGKILL)  # the main process and its pool children at once
    doomed.wait(10)
    with session_scope(url) as s:
        in_flight = {
            (eid, node)
            for eid, node in s.execute(
                select(StepExecution.execution_id, StepExecution.node_id).where(
                    StepExecution.worker.like(f"{first}@%"), StepExecution.status == "running"
                )
            )
        }
    done_at_kill = statuses(h.settings, ids)["succeeded"]
    killed_at = time.monotonic() - began
    start_workers(h, "rescuer", beat=False)
    wait_until(
        lambda: statuses(h.settings, ids)["succeeded"] == len(ids),
        90,
        "every execution to succeed",
        h,
    )
    all_done = time.monotonic() - began

    steps = step_counts(h.settings, ids)
    assert all(steps[(node, "succeeded")] == len(ids) for node in STEPS), steps
    hits = fault_upstream.keys("/slow")
    calls = {eid: hits[f"{eid}:call"] for eid in ids}
    assert all(n >= 1 for n in calls.values()), calls
    repeated = {eid: n for eid, n in calls.items() if n > 1}
    allowed = {eid for eid, node in in_flight if node == "call"}
    assert set(repeated) <= allowed, (repeated, in_flight)
    assert all(n == 2 for n in repeated.values()), repeated
    report(
        f"SIGKILL worker: executions={len(ids)} kills=1 killed_at_s={killed_at:.1f} "
        f"all_done_s={all_done:.1f} succeeded_before_kill={done_at_kill} "
        f"in_flight_at_kill={len(in_flight)} (calls {len(allowed)}) lost=0 "
        f"upstream_calls={sum(calls.values())} "
        f"repeated_calls={sum(n - 1 for n in repeated.values())}"
    )


def test_restart_rabbitmq_during_a_run(
    scenario: Any, fault_upstream: Upstream, private_mq: PrivateRabbitMQ
) -> None:
    h = scenario(lease_seconds=60)
    start_workers(h, "survivor")
    wid = h.workflow(workflow(fault_upstream, ms=800))
    ids = [h.start(wid, {"n": i}) for i in range(24)]
    wait_until(
        lambda: step_counts(h.settings, ids)[("call", "succeeded")] >= 4,
        60,
        "the run to be under way",
        h,
    )
    began = time.monotonic()
    private_mq.stop()
    # what was left when the broker was gone: the restart really interrupted the run
    left = len(ids) - statuses(h.settings, ids)["succeeded"]
    running = step_counts(h.settings, ids)[("call", "running")]
    private_mq.start()
    outage = time.monotonic() - began
    wait_until(
        lambda: statuses(h.settings, ids)["succeeded"] == len(ids),
        120,
        "every execution to succeed after the broker came back",
        h,
    )
    recovered = time.monotonic() - began
    assert left > 0
    steps = step_counts(h.settings, ids)
    assert all(steps[(node, "succeeded")] == len(ids) for node in STEPS), steps
    hits = fault_upstream.keys("/slow")
    calls = {eid: hits[f"{eid}:call"] for eid in ids}
    assert all(n >= 1 for n in calls.values()), calls
    repeated = sum(n - 1 for n in calls.values())
    report(
        f"RabbitMQ restart: executions={len(ids)} unfinished_when_down={left} "
        f"calls_running_when_down={running} broker_down_s={outage:.1f} "
        f"all_done_after_s={recovered:.1f} lost=0 upstream_calls={sum(calls.values())} "
        f"repeated_calls={repeated}"
    )


def test_stop_postgresql_answers_503_and_loses_nothing(
    scenario: Any, fault_upstream: Upstream, private_pg: PrivatePostgres
) -> None:
    # A step whose completion could not be written stays `running`: its lease re-queues it.
    h = scenario(lease_seconds=6)
    start_workers(h, "patient")
    wid = h.workflow(workflow(fault_upstream, ms=300))
    flask_app = create_app(h.settings)
    client = flask_app.test_client()
    with session_scope(h.settings.effective_database_url) as s:
        auth = {"Authorization": f"Bearer {create_api_key(s, h.user_id)}"}
    ids = []
    for i in range(12):
        response = client.post(
            "/api/executions", json={"workflow_id": wid, "input": {"n": i}}, headers=auth
        )
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    wait_until(
        lambda: statuses(h.settings, ids)["succeeded"] >= 2, 60, "the run to be under way", h
    )
    done_before = statuses(h.settings, ids)["succeeded"]

    private_pg.stop("fast")
    began = time.monotonic()
    try:
        answers = {}
        for method, path, body in (
            ("get", "/api/executions", None),
            ("post", "/api/executions", {"workflow_id": wid}),
            ("get", f"/api/executions/{ids[0]}", None),
        ):
            response = getattr(client, method)(path, json=body, headers=auth)
            answers[f"{method.upper()} {path}"] = response.status_code
            assert response.status_code == 503, (path, response.status_code, response.get_data())
            assert response.mimetype == "application/problem+json"
            assert response.headers["Retry-After"]
            assert response.get_json()["status"] == 503
        health = client.get("/api/health")
        assert health.status_code == 503
        assert health.get_json()["checks"]["database"].startswith("unavailable")
        time.sleep(2)  # workers keep failing meanwhile
    finally:
        private_pg.start()
    outage = time.monotonic() - began

    wait_until(lambda: client.get("/api/health").status_code == 200, 30, "the API to recover", h)
    listed = client.get(f"/api/executions?workflow_id={wid}&limit=100", headers=auth).get_json()
    assert sorted(item["id"] for item in listed["items"]) == sorted(ids)  # nothing accepted is lost
    wait_until(
        lambda: statuses(h.settings, ids)["succeeded"] == len(ids),
        120,
        "every execution to succeed after the database came back",
        h,
    )
    steps = step_counts(h.settings, ids)
    assert all(steps[(node, "succeeded")] == len(ids) for node in STEPS), steps
    hits = fault_upstream.keys("/slow")
    calls = {eid: hits[f"{eid}:call"] for eid in ids}
    assert all(n >= 1 for n in calls.values()), calls
    report(
        f"PostgreSQL stop: executions={len(ids)} succeeded_before={done_before} "
        f"db_down_s={outage:.1f} api_during_outage={answers} health=503 lost=0 "
        f"upstream_calls={sum(calls.values())} repeated_calls={sum(n - 1 for n in calls.values())}"
    )

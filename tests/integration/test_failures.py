"""Failure handling end to end, on the embedded default and on RabbitMQ + PostgreSQL + Redis.

Dead letters (and the broker's dead-letter queue), replay and discard through the API,
per-workflow concurrency limits, backpressure, the per-host circuit breaker, worker
heartbeats and the re-queueing of steps whose worker stopped heartbeating.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

import celeryconfig
from app import create_app
from app.auth import create_api_key
from engine import runs
from models import (
    DeadLetter,
    Execution,
    Heartbeat,
    LifecycleEvent,
    StepExecution,
    session_scope,
    utcnow,
)
from tests.support.harness import Harness
from tests.support.upstream import Upstream, start_upstream


def dag(nodes: list[dict[str, Any]], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {"nodes": nodes, "edges": [{"source": a, "target": b} for a, b in edges]}


def n(id: str, type: str, retry: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": id, "type": type}
    if retry:
        node["retry"] = retry
    if config:
        node["config"] = config
    return node


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    ids = [x["id"] for x in nodes]
    return dag(list(nodes), list(zip(ids, ids[1:], strict=False)))


class Api:
    """The Flask API on the harness's database and broker, with a key for its user."""

    def __init__(self, engine: Harness) -> None:
        self.app = create_app(engine.settings)
        self.client: FlaskClient = self.app.test_client()
        with session_scope(engine.settings.effective_database_url) as s:
            self.headers = {"Authorization": f"Bearer {create_api_key(s, engine.user_id)}"}

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kwargs)

    def delete(self, url: str) -> Any:
        return self.client.delete(url, headers=self.headers)


@pytest.fixture
def api(engine: Harness) -> Api:
    return Api(engine)


def dead_letter_ids(engine: Harness) -> list[str]:
    """Task ids in the broker's dead-letter queue (peeked: got, then requeued)."""
    from kombu import Queue

    from tasks.queues import message_task_id

    name = celeryconfig.dead_letter_queue_name(engine.settings.queue_name)
    with engine.app.connection_for_write() as conn:
        channel = conn.channel()
        held = []
        try:
            queue = Queue(name, channel=channel)
            while (message := queue.get(no_ack=False)) is not None:
                held.append(message)
            return [message_task_id(m.headers or {}, m.properties or {}) or "" for m in held]
        finally:
            for message in held:
                message.requeue()
            channel.close()


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def dead_letter_of(engine: Harness, execution_id: str) -> DeadLetter:
    with session_scope(engine.settings.effective_database_url) as s:
        return s.execute(
            select(DeadLetter).where(DeadLetter.execution_id == execution_id)
        ).scalar_one()


def gated_workflow(upstream: Upstream, key: str) -> dict[str, Any]:
    return chain(
        n("s", "start"),
        n("first", "action", method="GET", url=f"{upstream.url}/users/1"),
        n("gated", "action", method="GET", url=f"{upstream.url}/gate/{key}"),
        n("last", "transform", expression=".steps.first.output.body.name"),
        n("e", "end"),
    )


# -- dead letters ---------------------------------------------------------------------------


def test_failed_step_is_dead_lettered_and_replay_resumes_without_rerunning(
    engine: Harness, upstream: Upstream, api: Api
) -> None:
    key = f"dl-{secrets.token_hex(4)}"
    eid = engine.start(engine.workflow(gated_workflow(upstream, key)))
    r = engine.wait(eid)
    assert r.status == "failed" and r.step("gated")["status"] == "failed"
    dl = dead_letter_of(engine, eid)
    assert (dl.node_id, dl.status, dl.error["type"]) == ("gated", "dead", "http_error")
    assert dl.message["task"] == "canvasflow.run_node" and dl.message["args"] == [eid, "gated"]
    if engine.mode == "rabbitmq":
        # the broker dead-lettered the rejected message into <queue>.dead
        wait_for(lambda: dl.message["id"] in dead_letter_ids(engine), what="the DLQ message")
    listed = api.get(f"/api/dead-letters?execution_id={eid}").get_json()["items"]
    assert [item["id"] for item in listed] == [dl.id]

    upstream.open(key)
    response = api.post(f"/api/dead-letters/{dl.id}/replay")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["resumed_nodes"] == ["gated"]
    assert body["removed_from_queue"] == (1 if engine.mode == "rabbitmq" else 0)
    r = engine.wait(eid, until={"succeeded", "failed"})
    assert r.status == "succeeded", r.error
    assert r.output == "User 1"
    # the step that had succeeded did not run again; the replayed one ran once more
    assert upstream.keys("/users/1")[f"{eid}:first"] == 1
    assert upstream.keys(f"/gate/{key}")[f"{eid}:gated"] == 2
    # the replay restored the retry budget; the history keeps the dead-lettered attempt
    assert r.step("gated")["attempts"] == 1
    assert [h["status"] for h in r.step("gated")["history"]] == ["failed", "succeeded"]
    assert api.get(f"/api/dead-letters/{dl.id}").get_json()["status"] == "replayed"
    if engine.mode == "rabbitmq":
        assert dl.message["id"] not in dead_letter_ids(engine)
    assert api.post(f"/api/dead-letters/{dl.id}/replay").status_code == 409


def test_discarding_a_dead_letter_drops_row_and_message(
    engine: Harness, upstream: Upstream, api: Api
) -> None:
    key = f"dl-{secrets.token_hex(4)}"
    eid = engine.start(engine.workflow(gated_workflow(upstream, key)))
    assert engine.wait(eid).status == "failed"
    dl = dead_letter_of(engine, eid)
    if engine.mode == "rabbitmq":
        wait_for(lambda: dl.message["id"] in dead_letter_ids(engine), what="the DLQ message")
    assert api.delete(f"/api/dead-letters/{dl.id}").status_code == 204
    assert api.get(f"/api/dead-letters/{dl.id}").status_code == 404
    if engine.mode == "rabbitmq":
        assert dl.message["id"] not in dead_letter_ids(engine)
    assert engine.result(eid).status == "failed"  # discarding does not touch the execution


def test_queue_report_counts_dead_letters(engine: Harness, upstream: Upstream, api: Api) -> None:
    eid = engine.start(engine.workflow(gated_workflow(upstream, f"dl-{secrets.token_hex(4)}")))
    assert engine.wait(eid).status == "failed"
    dl = dead_letter_of(engine, eid)
    if engine.mode == "rabbitmq":
        wait_for(lambda: dl.message["id"] in dead_letter_ids(engine), what="the DLQ message")
    body = api.get("/api/queue").get_json()
    assert body["broker"] == ("rabbitmq" if engine.mode == "rabbitmq" else "embedded")
    q = body["queues"][0]
    assert q["name"] == engine.settings.queue_name
    assert q["dead_lettered"] >= 1 and q["dead_letter_rows"] >= 1
    assert q["consumers"] >= 1  # the harness's worker(s)


def test_work_queues_are_quorum_and_a_retry_countdown_waits_in_the_broker(
    engine: Harness, upstream: Upstream
) -> None:
    if engine.mode == "rabbitmq":
        from amqp.exceptions import PreconditionFailed
        from kombu import Connection

        # the same declaration as the worker's, but classic: only the queue type differs
        for queue in celeryconfig.make_queues(engine.settings):
            arguments = {**(queue.queue_arguments or {}), "x-queue-type": "classic"}
            with Connection(engine.settings.broker_url) as conn:
                with pytest.raises(PreconditionFailed) as refused:
                    conn.channel().queue_declare(
                        queue=queue.name, durable=True, auto_delete=False, arguments=arguments
                    )
            assert "current is 'quorum'" in str(refused.value)
    # A retry 2 s later: on quorum queues the countdown goes through Celery's native
    # delayed delivery (celery_delayed_* queues), not an ETA held by the worker.
    key = f"later-{secrets.token_hex(4)}"
    wf = chain(
        n("s", "start"),
        n(
            "call",
            "action",
            method="GET",
            url=f"{upstream.url}/flaky/{key}?fail=1",
            retry={"max_attempts": 2, "initial_seconds": 2},
        ),
        n("e", "end"),
    )
    r = engine.run(wf, timeout=60)
    assert r.status == "succeeded", r.error
    hits = upstream.hits_for(f"/flaky/{key}")
    assert len(hits) == 2
    assert hits[1].at - hits[0].at >= 1.9
    assert [h["status"] for h in r.step("call")["history"]] == ["failed", "succeeded"]


# -- per-workflow concurrency ---------------------------------------------------------------


def test_max_concurrency_queues_extra_executions_as_pending(
    engine: Harness, upstream: Upstream
) -> None:
    wf = chain(
        n("s", "start"),
        n("slow", "action", method="GET", url=f"{upstream.url}/slow?ms=600"),
        n("e", "end"),
    )
    wid = engine.workflow(wf, max_concurrency=2)
    ids = [engine.start(wid) for _ in range(6)]
    url = engine.settings.effective_database_url
    with session_scope(url) as s:
        first = dict(
            s.execute(
                select(Execution.id, Execution.status).where(Execution.workflow_id == wid)
            ).all()
        )
    assert [first[i] for i in ids] == ["running"] * 2 + ["pending"] * 4
    most_running, most_steps = 0, 0
    deadline = time.monotonic() + 60
    while True:
        with session_scope(url) as s:
            statuses = list(
                s.execute(select(Execution.status).where(Execution.workflow_id == wid)).scalars()
            )
            steps = s.execute(
                select(func.count())
                .select_from(StepExecution)
                .join(Execution, Execution.id == StepExecution.execution_id)
                .where(Execution.workflow_id == wid, StepExecution.status == "running")
            ).scalar_one()
        most_running = max(most_running, statuses.count("running"))
        most_steps = max(most_steps, steps)
        if all(st in {"succeeded", "failed", "cancelled"} for st in statuses):
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.02)
    assert statuses == ["succeeded"] * 6
    assert most_running == 2 and most_steps <= 2
    with session_scope(url) as s:
        created = {
            e.execution_id: e.detail["status"]
            for e in s.execute(
                select(LifecycleEvent).where(
                    LifecycleEvent.execution_id.in_(ids), LifecycleEvent.event == "created"
                )
            ).scalars()
        }
        promoted = set(
            s.execute(
                select(LifecycleEvent.execution_id).where(
                    LifecycleEvent.execution_id.in_(ids), LifecycleEvent.event == "started"
                )
            ).scalars()
        )
    assert [created[i] for i in ids] == ["running"] * 2 + ["pending"] * 4
    assert promoted == set(ids[2:])  # the ticker started them as others finished
    assert sum(upstream.keys("/slow")[f"{i}:slow"] for i in ids) == 6


# -- backpressure -----------------------------------------------------------------------------


def test_backpressure_answers_429_and_creates_nothing(engine: Harness, api: Api) -> None:
    """A queue nobody consumes, deeper than max_queue_depth: starts are refused."""
    from celery import Celery

    from tasks.queues import delete_queues

    settings = engine.settings.with_(
        queue_name=f"{engine.settings.queue_name}_bp", max_queue_depth=2
    )
    celery = Celery("backpressure")
    celery.conf.update(celeryconfig.build(settings))
    flask_app = create_app(settings)
    flask_app.extensions["celery"] = celery  # not the harness's app: its queue is consumed
    client = flask_app.test_client()
    wid = engine.workflow(chain(n("s", "start"), n("e", "end")))
    try:
        for _ in range(3):
            celery.send_task("canvasflow.nothing", args=(1,))
        time.sleep(1.1)  # queue depths are cached for a second
        response = client.post("/api/executions", json={"workflow_id": wid}, headers=api.headers)
        assert response.status_code == 429, response.get_json()
        assert response.mimetype == "application/problem+json"
        assert int(response.headers["Retry-After"]) >= 1
        assert "3 messages" in response.get_json()["detail"]
        with session_scope(settings.effective_database_url) as s:
            count = s.execute(
                select(func.count()).select_from(Execution).where(Execution.workflow_id == wid)
            ).scalar_one()
        assert count == 0
        celery.control.purge()
        time.sleep(1.1)
        ok = client.post("/api/executions", json={"workflow_id": wid}, headers=api.headers)
        assert ok.status_code == 202
    finally:
        delete_queues(celery)
    # Its start message went to the unconsumed queue: the ticker republishes it as lost.
    assert engine.wait(ok.get_json()["id"], timeout=30).status == "succeeded"


# -- circuit breaker --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def breaker_upstream() -> Iterator[Upstream]:
    """An upstream reached as ``localhost``: a breaker of its own (breakers are per host)."""
    up = start_upstream()
    up.url = up.url.replace("127.0.0.1", "localhost")
    yield up
    up.server.shutdown()


def test_circuit_opens_after_consecutive_failures_and_fails_fast(
    engine: Harness, breaker_upstream: Upstream
) -> None:
    from tasks.handlers import upstream as breakers

    # Breakers live per process: start closed, whatever an earlier embedded engine left.
    breakers.reset()
    before = len(breaker_upstream.hits_for("/status/500"))
    threshold = engine.settings.circuit_failure_threshold
    attempts = 5 * threshold
    retry = {"max_attempts": attempts, "initial_seconds": 0}
    wf = chain(
        n("s", "start"),
        n("x", "action", method="GET", url=f"{breaker_upstream.url}/status/500", retry=retry),
        n("e", "end"),
    )
    r = engine.run(wf, timeout=120)
    assert r.status == "failed"
    assert r.step("x")["attempts"] == attempts
    # Breakers are per worker process, and which process takes the last attempt is up to
    # the broker: the last error may be either kind there, but attempts did fail fast.
    kinds = [(h.get("error") or {}).get("type") for h in r.step("x")["history"]]
    assert "circuit_open" in kinds
    if engine.mode == "embedded":
        assert r.step("x")["error"]["type"] == "circuit_open"
    hits = len(breaker_upstream.hits_for("/status/500")) - before
    # Breakers are per worker process: the embedded engine is one, the harness's worker
    # has four pool processes. Past the threshold, attempts failed fast without a call.
    processes = 1 if engine.mode == "embedded" else 4
    assert threshold <= hits <= threshold * processes < attempts
    if engine.mode == "embedded":
        assert hits == threshold
        # another call to the same host fails fast at once, without reaching it
        r2 = engine.run(
            chain(
                n("s", "start"),
                n("y", "action", method="GET", url=f"{breaker_upstream.url}/users/2"),
                n("e", "end"),
            )
        )
        assert r2.status == "failed" and r2.step("y")["error"]["type"] == "circuit_open"
        assert breaker_upstream.hits_for("/users/2") == []


# -- heartbeats -------------------------------------------------------------------------------


def test_workers_heartbeat_and_health_lists_them(engine: Harness, api: Api) -> None:
    body = api.client.get("/api/health").get_json()
    alive = [w for w in body["workers"] if w["alive"]]
    assert alive, body
    with session_scope(engine.settings.effective_database_url) as s:
        rows = list(s.execute(select(Heartbeat).where(Heartbeat.kind == "worker")).scalars())
    mine = [
        r for r in rows if r.info and engine.settings.queue_name in (r.info.get("queues") or [])
    ]
    assert mine and {w["name"] for w in alive} >= {r.name for r in mine}
    info = mine[0].info
    assert {"pid", "concurrency", "queues", "active"} <= info.keys()
    assert info["concurrency"] == (8 if engine.mode == "embedded" else 4)
    metrics = api.get("/api/observability/metrics").get_json()
    assert metrics["workers_alive"] >= 1


def test_running_step_of_a_worker_that_stopped_heartbeating_is_requeued(engine: Harness) -> None:
    from tasks.heartbeat import requeue_steps_of_dead_workers
    from tasks.ticker import Ticker

    url = engine.settings.effective_database_url
    chords = engine.settings.native_chords
    wid = engine.workflow(
        chain(n("s", "start"), n("t", "transform", expression='"done"'), n("e", "end"))
    )
    ago = utcnow() - timedelta(seconds=10)
    ghost, live = f"ghost-{secrets.token_hex(3)}@nowhere", f"live-{secrets.token_hex(3)}@here"
    eids = {}
    for worker in (ghost, live):
        # Created and claimed by hand, never published: as if `worker` took the message.
        with session_scope(url) as s:
            eid = runs.create_execution(
                s, user_id=engine.user_id, workflow_id=wid, version=1, input=None, chords=chords
            ).execution.id
        with session_scope(url) as s:
            claim, _ = runs.claim_step(s, eid, "s", chords=chords, worker=worker)
            assert claim.kind == "run"
            s.execute(
                update(StepExecution)
                .where(StepExecution.execution_id == eid)
                .values(
                    started_at=ago,
                    lease_expires_at=ago + timedelta(seconds=engine.settings.lease_seconds),
                )
            )
        eids[worker] = eid
    with session_scope(url) as s:
        s.add(
            Heartbeat(
                name=ghost,
                kind="worker",
                started_at=ago - timedelta(seconds=60),
                last_seen=ago - timedelta(seconds=5),
            )
        )
        s.add(
            Heartbeat(
                name=live, kind="worker", started_at=ago - timedelta(seconds=60), last_seen=utcnow()
            )
        )
    ticker = Ticker(engine.settings.with_(extra={"heartbeat_timeout": 2}), engine.app)
    assert requeue_steps_of_dead_workers(ticker) == 1
    assert requeue_steps_of_dead_workers(ticker) == 0  # re-queued once per timeout, not per tick
    r = engine.wait(eids[ghost])
    assert r.status == "succeeded" and r.output == "done"
    assert r.step("s")["attempts"] == 2  # the ghost's attempt, then the live worker's
    alive = engine.result(eids[live])
    assert alive.status == "running" and alive.step("s")["status"] == "running"
    with session_scope(url) as s:
        runs.cancel_execution(s, eids[live])
        s.execute(Heartbeat.__table__.delete().where(Heartbeat.name.in_([ghost, live])))


def test_a_worker_restarted_under_the_same_name_does_not_vouch_for_old_steps(
    engine: Harness,
) -> None:
    from tasks.heartbeat import requeue_steps_of_dead_workers
    from tasks.ticker import Ticker

    url = engine.settings.effective_database_url
    chords = engine.settings.native_chords
    wid = engine.workflow(chain(n("s", "start"), n("e", "end")))
    name = f"fixed-{secrets.token_hex(3)}@host"
    ago = utcnow() - timedelta(seconds=10)
    with session_scope(url) as s:
        eid = runs.create_execution(
            s, user_id=engine.user_id, workflow_id=wid, version=1, input=None, chords=chords
        ).execution.id
    with session_scope(url) as s:
        runs.claim_step(s, eid, "s", chords=chords, worker=name)
        s.execute(
            update(StepExecution)
            .where(StepExecution.execution_id == eid)
            .values(
                started_at=ago,
                lease_expires_at=ago + timedelta(seconds=engine.settings.lease_seconds),
            )
        )
        # beating right now, but as a process that started after the step was claimed
        s.add(
            Heartbeat(
                name=name,
                kind="worker",
                started_at=utcnow() - timedelta(seconds=1),
                last_seen=utcnow(),
            )
        )
    ticker = Ticker(engine.settings.with_(extra={"heartbeat_timeout": 2}), engine.app)
    assert requeue_steps_of_dead_workers(ticker) == 1
    assert engine.wait(eid).status == "succeeded"
    with session_scope(url) as s:
        s.execute(Heartbeat.__table__.delete().where(Heartbeat.name == name))

"""Cron triggers on Celery beat, end to end, and the claim that keeps two beats honest.

The first tests drive tasks/cron.py's job in-process (misfire policies, two jobs racing
for one occurrence). The rest start real processes: ``canvasflow worker -c 2`` and two
``canvasflow beat`` (running at once, as in the duplicate test) on PostgreSQL, RabbitMQ with
a queue of this run's own and Redis, ticking every 0.2 s, with 1- and 2-second (6-field)
schedules so nothing sleeps for minutes.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

import celeryconfig
import migrations
import models
from app import create_app
from app.auth import create_user
from models import Execution, Heartbeat, Trigger, Workflow, WorkflowVersion, utcnow
from settings import Settings
from tasks.cron import CronJob
from tests.services import require_postgres, require_rabbitmq, require_redis
from tests.support.harness import (
    create_pg_database,
    drop_pg_database,
    start_beat,
    start_worker,
)

TINY = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
    "edges": [{"source": "start", "target": "end"}],
}


# -- in-process: the job itself --------------------------------------------------------------


def add_cron_trigger(settings: Settings, cron: str, next_fire_at: datetime, **config: Any) -> str:
    """A user, a workflow and a cron trigger due at ``next_fire_at``, written directly."""
    with models.session_scope(settings.effective_database_url) as s:
        user, _ = create_user(s, f"u-{secrets.token_hex(3)}")
        wf = Workflow(user_id=user.id, name="wf", version=1)
        s.add(wf)
        s.flush()
        s.add(WorkflowVersion(workflow_id=wf.id, version=1, definition=TINY))
        trigger = Trigger(
            user_id=user.id,
            workflow_id=wf.id,
            type="cron",
            config={"cron": cron, "timezone": "UTC", "input": {"from": "cron"}, **config},
            next_fire_at=next_fire_at,
        )
        s.add(trigger)
        s.flush()
        return trigger.id


def just_missed() -> tuple[datetime, str]:
    """A second ago, and a daily 6-field schedule whose only recent occurrence is then."""
    due = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    return due, f"{due.second} {due.minute} {due.hour} * * *"


def fake_ticker(settings: Settings) -> Any:
    """What the job reads from a Ticker; publishing goes to an in-memory queue nobody reads."""
    app = Celery("cron-test", broker="memory://", set_as_current=False)
    app.conf.update(task_default_queue=f"cf_cron_{secrets.token_hex(4)}")
    return SimpleNamespace(settings=settings, app=app, url=settings.effective_database_url)


def executions_of(settings: Settings, trigger_id: str) -> list[Execution]:
    with models.session_scope(settings.effective_database_url) as s:
        return list(
            s.scalars(
                select(Execution)
                .where(Execution.trigger_id == trigger_id)
                .order_by(Execution.scheduled_for)
            )
        )


def trigger_row(settings: Settings, trigger_id: str) -> Trigger:
    with models.session_scope(settings.effective_database_url) as s:
        row = s.get(Trigger, trigger_id)
        assert row is not None
        return row


def test_due_trigger_fires_once_and_moves_on(settings: Settings) -> None:
    due, cron = just_missed()
    trigger_id = add_cron_trigger(settings, cron, due)
    job, ticker = CronJob(beat=True), fake_ticker(settings)
    job(ticker)
    [execution] = executions_of(settings, trigger_id)
    assert execution.input == {"from": "cron"}
    assert execution.scheduled_for == due
    row = trigger_row(settings, trigger_id)
    assert row.next_fire_at > due and row.last_fired_at is not None
    with models.session_scope(settings.effective_database_url) as s:
        beat = s.get(Heartbeat, job.name)
        assert beat.kind == "beat" and beat.info["fired"] == 1


def test_misfire_fire_once_starts_one_execution_for_the_latest_missed_occurrence(
    settings: Settings,
) -> None:
    now = utcnow()
    trigger_id = add_cron_trigger(settings, "*/5 * * * *", now - timedelta(hours=3))
    CronJob(beat=True).fire_due(fake_ticker(settings), now)
    [execution] = executions_of(settings, trigger_id)
    latest = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    assert execution.scheduled_for == latest
    assert trigger_row(settings, trigger_id).next_fire_at == latest + timedelta(minutes=5)


def test_misfire_skip_starts_nothing_and_moves_on(settings: Settings) -> None:
    # Midway between two */5 occurrences: right after one, its latest occurrence would be
    # within the skip grace and fire (the run that found this started 3 s after a boundary).
    wall = utcnow()
    now = wall.replace(minute=wall.minute // 5 * 5, second=0, microsecond=0) - timedelta(
        seconds=150
    )
    trigger_id = add_cron_trigger(settings, "*/5 * * * *", now - timedelta(hours=3), misfire="skip")
    job = CronJob(beat=True)
    job.fire_due(fake_ticker(settings), now)
    assert executions_of(settings, trigger_id) == []
    assert trigger_row(settings, trigger_id).next_fire_at > now
    assert job.counts["skipped"] == 1


def test_new_and_reenabled_triggers_get_a_next_fire_time(settings: Settings) -> None:
    trigger_id = add_cron_trigger(settings, "0 * * * *", None)  # type: ignore[arg-type]
    now = utcnow()
    assert CronJob(beat=True).schedule_new(settings.effective_database_url, now) == 1
    next_fire_at = trigger_row(settings, trigger_id).next_fire_at
    assert now < next_fire_at <= now + timedelta(hours=1) and next_fire_at.minute == 0


def test_two_jobs_racing_for_one_occurrence_start_it_once(settings: Settings) -> None:
    due, cron = just_missed()
    trigger_ids = [add_cron_trigger(settings, cron, due) for _ in range(5)]
    jobs = [CronJob(beat=True) for _ in range(4)]
    barrier = threading.Barrier(len(jobs))
    now = utcnow()

    def run(job: CronJob) -> None:
        barrier.wait()
        job.fire_due(fake_ticker(settings), now)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for trigger_id in trigger_ids:
        assert [e.scheduled_for for e in executions_of(settings, trigger_id)] == [due]
    assert sum(job.counts["fired"] for job in jobs) == len(trigger_ids)
    assert sum(job.counts["duplicates"] for job in jobs) == 0  # the claim, not the constraint


def test_a_duplicate_fire_is_caught_by_the_unique_constraint(settings: Settings) -> None:
    due, cron = just_missed()
    trigger_id = add_cron_trigger(settings, cron, due)
    job, ticker = CronJob(beat=True), fake_ticker(settings)
    job.fire_due(ticker, utcnow())
    # as if a second beat had claimed the same occurrence without the compare-and-set
    with models.session_scope(settings.effective_database_url) as s:
        s.execute(update(Trigger).where(Trigger.id == trigger_id).values(next_fire_at=due))
    job.fire_due(ticker, utcnow())
    assert len(executions_of(settings, trigger_id)) == 1
    assert (job.counts["fired"], job.counts["duplicates"]) == (1, 1)


# -- real processes: worker + beat on RabbitMQ, PostgreSQL, Redis -----------------------------


@dataclass
class Stack:
    settings: Settings
    client: FlaskClient
    auth: dict[str, str]
    logdir: Path
    procs: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.settings.effective_database_url

    def workflow(self) -> str:
        response = self.client.post(
            "/api/workflows", json={"name": "cron", "definition": TINY}, headers=self.auth
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def cron(self, cron: str, enabled: bool = True) -> dict[str, Any]:
        response = self.client.post(
            "/api/triggers",
            json={
                "workflow_id": self.workflow(),
                "type": "cron",
                "config": {"cron": cron, "input": {"n": 1}},
                "enabled": enabled,
            },
            headers=self.auth,
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def put(self, trigger_id: str, **body: Any) -> dict[str, Any]:
        response = self.client.put(f"/api/triggers/{trigger_id}", json=body, headers=self.auth)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def fires(self, trigger_id: str) -> list[tuple[datetime, str]]:
        with models.session_scope(self.url) as s:
            return [
                (row.scheduled_for, row.status)
                for row in s.execute(
                    select(Execution.scheduled_for, Execution.status)
                    .where(Execution.trigger_id == trigger_id)
                    .order_by(Execution.scheduled_for)
                )
            ]

    def wait_for(
        self, trigger_id: str, count: int, timeout: float, succeeded: bool = False
    ) -> list:
        deadline = time.monotonic() + timeout
        while True:
            fires = self.fires(trigger_id)
            done = [f for f in fires if f[1] == "succeeded"] if succeeded else fires
            if len(done) >= count:
                return fires
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(done)} of {count} fires after {timeout}s: {fires}" + self.logs()
                )
            time.sleep(0.1)

    def beats(self) -> list[Heartbeat]:
        with models.session_scope(self.url) as s:
            return list(s.scalars(select(Heartbeat).where(Heartbeat.kind == "beat")))

    def logs(self) -> str:
        return "".join(
            f"\n--- {f.name} ---\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:])
            for f in sorted(self.logdir.glob("*.log"))
        )


def stop_all(procs: list[Any], grace: float = 10.0) -> None:
    """SIGTERM every process at once, SIGKILL whatever still runs ``grace`` seconds later."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _delete_queues(settings: Settings) -> None:
    from kombu import Connection

    with Connection(settings.broker_url, connect_timeout=5) as conn:
        for name in (settings.queue_name, celeryconfig.dead_letter_queue_name(settings.queue_name)):
            try:
                conn.channel().queue_delete(name)
            except Exception:  # never declared
                pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh database, a worker and two beats; everything stopped and dropped afterwards."""
    pg, amqp, redis_url = require_postgres(), require_rabbitmq(), require_redis()
    logdir = tmp_path_factory.mktemp("cron-beat")
    database_url = create_pg_database(pg)
    settings = Settings(
        data_dir=logdir,
        database_url=database_url,
        broker_url=amqp,
        result_backend=redis_url,
        queue_name=f"cf_test_{secrets.token_hex(4)}",  # never the shared default queue
        tick_seconds=0.2,
        lost_message_seconds=3,
        action_allow_private=True,
    )
    migrations.upgrade(database_url)
    with models.session_scope(database_url) as s:
        _, key = create_user(s, "cron-tester")
    stack = Stack(
        settings, create_app(settings).test_client(), {"Authorization": f"Bearer {key}"}, logdir
    )
    try:
        stack.procs["worker"] = start_worker(settings, logdir, "worker", concurrency=2)
        # Both beats start now (the second is for the duplicate test): it saves a startup.
        stack.procs["beat1"] = start_beat(settings, logdir, "beat1")
        stack.procs["beat2"] = start_beat(settings, logdir, "beat2")
        deadline = time.monotonic() + 30
        while len(stack.beats()) < 2:
            assert time.monotonic() < deadline, "beat wrote no heartbeat" + stack.logs()
            time.sleep(0.1)
        yield stack
    finally:
        stop_all(list(stack.procs.values()))
        _delete_queues(settings)
        drop_pg_database(pg, database_url)


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest.mark.redis
class TestRealBeat:
    def test_every_two_seconds_fires_and_a_disabled_trigger_does_not(self, stack: Stack) -> None:
        trigger = stack.cron("*/2 * * * * *")
        disabled = stack.cron("* * * * * *", enabled=False)
        fires = stack.wait_for(trigger["id"], 3, timeout=30, succeeded=True)
        occurrences = [at for at, _ in fires]
        assert len(set(occurrences)) == len(occurrences)
        assert all(at.second % 2 == 0 and at.microsecond == 0 for at in occurrences)
        assert occurrences[0] == datetime.fromisoformat(trigger["next_fire_at"])
        with models.session_scope(stack.url) as s:
            rows = s.scalars(select(Execution).where(Execution.trigger_id == trigger["id"])).all()
            assert {r.input["n"] for r in rows} == {1}
        assert stack.fires(disabled["id"]) == []

        status = stack.client.get("/api/scheduler/status", headers=stack.auth).get_json()
        assert status["beat"]["alive"] is True
        assert datetime.fromisoformat(status["beat"]["last_tick"]) > utcnow() - timedelta(seconds=5)
        assert any(
            i["name"].startswith("beat@") and i["alive"] for i in status["beat"]["instances"]
        )
        listed = {t["id"]: t for t in status["triggers"]}
        assert datetime.fromisoformat(listed[trigger["id"]]["next_fire_at"]) > utcnow() - timedelta(
            seconds=2
        )
        assert listed[trigger["id"]]["last_fired_at"] is not None
        assert listed[disabled["id"]]["next_fire_at"] is None
        stack.put(trigger["id"], enabled=False)

    def test_a_changed_cron_applies_and_a_deleted_trigger_stops_without_restart(
        self, stack: Stack
    ) -> None:
        changed = stack.cron("0 0 1 1 *")  # next New Year
        deleted = stack.cron("* * * * * *")
        stack.wait_for(deleted["id"], 2, timeout=10)
        assert stack.fires(changed["id"]) == []
        stack.put(changed["id"], config={"cron": "* * * * * *"})
        response = stack.client.delete(f"/api/triggers/{deleted['id']}", headers=stack.auth)
        assert response.status_code == 204
        stack.wait_for(changed["id"], 2, timeout=10)
        stack.put(changed["id"], enabled=False)
        time.sleep(0.5)  # a fire claimed just before the change may still be starting
        settled = {t: len(stack.fires(t)) for t in (changed["id"], deleted["id"])}
        time.sleep(2.5)
        # neither fires any more; the deleted trigger's executions stay readable
        assert {t: len(stack.fires(t)) for t in settled} == settled

    def test_two_beats_never_fire_an_occurrence_twice(self, stack: Stack) -> None:
        alive = [b for b in stack.beats() if b.last_seen > utcnow() - timedelta(seconds=3)]
        assert len(alive) == 2, stack.logs()
        trigger = stack.cron("*/2 * * * * *")
        first = datetime.fromisoformat(trigger["next_fire_at"])
        time.sleep(8)
        stack.put(trigger["id"], enabled=False)
        last = utcnow()
        time.sleep(0.5)
        fires = stack.fires(trigger["id"])
        occurrences = [at for at, _ in fires]
        expected = [first + timedelta(seconds=2 * i) for i in range(10)]
        expected = [at for at in expected if at <= last]
        with models.session_scope(stack.url) as s:
            repeated = s.execute(
                select(Execution.scheduled_for)
                .where(Execution.trigger_id == trigger["id"])
                .group_by(Execution.scheduled_for)
                .having(func.count() > 1)
            ).all()
        assert repeated == []
        assert len(occurrences) == len(set(occurrences))
        assert set(occurrences) <= set(expected)
        assert len(expected) - 1 <= len(occurrences) <= len(expected), (occurrences, expected)
        beats = [b for b in stack.beats() if b.last_seen > utcnow() - timedelta(seconds=5)]
        assert len(beats) == 2
        assert sum(b.info["duplicates"] for b in beats) == 0
        status = stack.client.get("/api/scheduler/status", headers=stack.auth).get_json()
        assert sum(i["alive"] for i in status["beat"]["instances"]) == 2
        print(
            f"two beats, {len(expected)} occurrences: {len(occurrences)} fired, "
            f"{sum(b.info['duplicates'] for b in beats)} duplicates; per beat: "
            + ", ".join(
                f"{b.name} fired={b.info['fired']} lost_claims={b.info['lost_claims']}"
                for b in beats
            )
        )

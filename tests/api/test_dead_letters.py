"""The dead-letter API: list and filter, inspect, discard, replay; on SQLite and PostgreSQL.

Dead letters are produced by the engine's own transitions (claim, then fail the step),
exactly as a worker does, without a worker: the replay's messages stay in the in-memory
broker. The RabbitMQ test checks that discard takes the message out of ``<queue>.dead``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

import models
from app import create_app
from engine import runs
from models import AuditLog, DeadLetter, Execution, StepExecution, User
from settings import Settings
from tests.conftest import bearer, make_user
from tests.services import require_rabbitmq

ACTION_DAG: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "call", "type": "action", "config": {"method": "GET", "url": "http://x.test/a"}},
        {"id": "after", "type": "transform", "config": {"expression": "1"}},
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "call"},
        {"source": "call", "target": "after"},
        {"source": "after", "target": "end"},
    ],
}


def create_workflow(client, auth) -> str:
    response = client.post(
        "/api/workflows", json={"name": "dl", "definition": ACTION_DAG}, headers=auth
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def fail_execution(
    settings: Settings, user_name: str, workflow_id: str, task_id: str | None = None
) -> tuple[str, str]:
    """Run start, then fail ``call`` for good as a worker would: (execution, dead letter) ids."""
    url = settings.effective_database_url
    chords = settings.native_chords
    with models.session_scope(url) as s:
        user_id = s.execute(select(User.id).where(User.name == user_name)).scalar_one()
        started = runs.create_execution(
            s, user_id=user_id, workflow_id=workflow_id, version=1, input={"n": 1}, chords=chords
        )
        eid = started.execution.id
    with models.session_scope(url) as s:
        claim, _ = runs.claim_step(s, eid, "start", chords=chords, worker="w@test")
        runs.complete_step(s, claim, {"n": 1})
    with models.session_scope(url) as s:
        claim, _ = runs.claim_step(s, eid, "call", chords=chords, repair=True, worker="w@test")
        assert claim.kind == "run"
        message = {
            "task": "canvasflow.run_node",
            "id": task_id or secrets.token_hex(8),
            "args": [eid, "call"],
            "kwargs": {},
            "retries": 0,
        }
        runs.fail_step(
            s,
            claim,
            {"type": "http_error", "message": "404 from x.test"},
            message=message,
            queue=settings.queue_name,
        )
    with models.session_scope(url) as s:
        dl = s.execute(select(DeadLetter.id).where(DeadLetter.execution_id == eid)).scalar_one()
    return eid, dl


def step_statuses(settings: Settings, execution_id: str) -> dict[str, str]:
    with models.session_scope(settings.effective_database_url) as s:
        rows = s.execute(
            select(StepExecution.node_id, StepExecution.status).where(
                StepExecution.execution_id == execution_id
            )
        ).all()
        return dict(rows)


def audit_actions(settings: Settings, entity_id: str) -> list[str]:
    with models.session_scope(settings.effective_database_url) as s:
        return list(
            s.execute(
                select(AuditLog.action).where(AuditLog.entity_id == entity_id).order_by(AuditLog.id)
            ).scalars()
        )


def test_failed_step_is_listed_with_error_and_message(client, auth, settings):
    wid = create_workflow(client, auth)
    eid, dl = fail_execution(settings, "alice", wid, task_id="task-1")
    page = client.get("/api/dead-letters", headers=auth).get_json()
    assert page["next_cursor"] is None
    assert [item["id"] for item in page["items"]] == [dl]
    item = page["items"][0]
    assert item["execution_id"] == eid and item["workflow_id"] == wid
    assert item["node_id"] == "call" and item["status"] == "dead"
    assert item["error"]["type"] == "http_error"
    assert item["message"]["id"] == "task-1" and item["message"]["args"] == [eid, "call"]
    assert item["queue"] == settings.queue_name and item["replayed_at"] is None
    one = client.get(f"/api/dead-letters/{dl}", headers=auth)
    assert one.status_code == 200 and one.get_json() == item


def test_filters_and_pagination(client, auth, settings):
    w1, w2 = create_workflow(client, auth), create_workflow(client, auth)
    e1, d1 = fail_execution(settings, "alice", w1)
    e2, d2 = fail_execution(settings, "alice", w2)
    e3, d3 = fail_execution(settings, "alice", w2)

    def ids(**query: str) -> list[str]:
        response = client.get("/api/dead-letters", query_string=query, headers=auth)
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    assert ids() == [d3, d2, d1]  # newest first
    assert ids(workflow_id=w2) == [d3, d2]
    assert ids(execution_id=e1) == [d1]
    assert ids(node_id="call") == [d3, d2, d1] and ids(node_id="nope") == []
    assert ids(status="dead") == [d3, d2, d1] and ids(status="replayed") == []
    first = client.get("/api/dead-letters?limit=2", headers=auth).get_json()
    assert [i["id"] for i in first["items"]] == [d3, d2] and first["next_cursor"]
    rest = client.get(
        "/api/dead-letters", query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
    ).get_json()
    assert [i["id"] for i in rest["items"]] == [d1] and rest["next_cursor"] is None
    bad = client.get("/api/dead-letters?status=lost", headers=auth)
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    assert bad.get_json()["errors"][0]["pointer"] == "/query/status"
    assert client.get("/api/dead-letters?limit=0", headers=auth).status_code == 422


def test_other_users_dead_letters_are_404(client, auth, other_auth, settings):
    wid = create_workflow(client, auth)
    _, dl = fail_execution(settings, "alice", wid)
    assert client.get("/api/dead-letters", headers=other_auth).get_json()["items"] == []
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/api/dead-letters/{dl}", headers=other_auth)
        assert response.status_code == 404
    assert client.post(f"/api/dead-letters/{dl}/replay", headers=other_auth).status_code == 404
    assert client.get(f"/api/dead-letters/{dl}", headers=auth).status_code == 200
    assert client.get("/api/dead-letters").status_code == 401


def test_replay_resumes_the_execution_from_the_failed_step(client, auth, settings):
    wid = create_workflow(client, auth)
    eid, dl = fail_execution(settings, "alice", wid)
    assert step_statuses(settings, eid) == {
        "start": "succeeded",
        "call": "failed",
        "after": "cancelled",
        "end": "cancelled",
    }
    response = client.post(f"/api/dead-letters/{dl}/replay", headers=auth)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "replayed" and body["replayed_at"]
    assert body["execution_id"] == eid and body["node_id"] == "call"
    assert body["resumed_nodes"] == ["call"]
    assert response.headers["Location"] == f"/api/executions/{eid}"
    # the succeeded step keeps its output; the failed and cancelled ones wait to run again
    assert step_statuses(settings, eid) == {
        "start": "succeeded",
        "call": "pending",
        "after": "pending",
        "end": "pending",
    }
    execution = client.get(f"/api/executions/{eid}", headers=auth).get_json()
    assert execution["status"] == "running" and execution["error"] is None
    row = client.get(f"/api/dead-letters/{dl}", headers=auth).get_json()
    assert row["status"] == "replayed" and row["replayed_at"]
    assert audit_actions(settings, dl) == ["dead_letter.replay"]
    # replayed already (and the execution is running): 409, nothing changes
    again = client.post(f"/api/dead-letters/{dl}/replay", headers=auth)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    assert "replayed" in again.get_json()["detail"]


def test_replay_of_an_execution_that_is_no_longer_failed_is_409(client, auth, settings):
    wid = create_workflow(client, auth)
    eid, dl = fail_execution(settings, "alice", wid)
    assert client.post(f"/api/executions/{eid}/retry", headers=auth).status_code == 202
    response = client.post(f"/api/dead-letters/{dl}/replay", headers=auth)
    assert response.status_code == 409
    assert "running" in response.get_json()["detail"]
    assert client.get(f"/api/dead-letters/{dl}", headers=auth).get_json()["status"] == "dead"


def test_replay_resolves_older_dead_letters_of_the_same_step(client, auth, settings):
    wid = create_workflow(client, auth)
    eid, first = fail_execution(settings, "alice", wid)
    # retried by hand, and failed again at the same step
    with models.session_scope(settings.effective_database_url) as s:
        assert runs.resume_execution(s, eid, chords=settings.native_chords) == ["call"]
    with models.session_scope(settings.effective_database_url) as s:
        claim, _ = runs.claim_step(s, eid, "call", chords=settings.native_chords, repair=True)
        runs.fail_step(s, claim, {"type": "http_error", "message": "again"}, message={"id": "t2"})
    with models.session_scope(settings.effective_database_url) as s:
        second = s.execute(
            select(DeadLetter.id).where(DeadLetter.execution_id == eid, DeadLetter.id != first)
        ).scalar_one()
    assert client.post(f"/api/dead-letters/{second}/replay", headers=auth).status_code == 202
    statuses = {
        i["id"]: i["status"]
        for i in client.get("/api/dead-letters", headers=auth).get_json()["items"]
    }
    assert statuses == {first: "replayed", second: "replayed"}
    assert client.post(f"/api/dead-letters/{first}/replay", headers=auth).status_code == 409


def test_delete_discards_the_row(client, auth, settings):
    wid = create_workflow(client, auth)
    eid, dl = fail_execution(settings, "alice", wid)
    response = client.delete(f"/api/dead-letters/{dl}", headers=auth)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/api/dead-letters/{dl}", headers=auth).status_code == 404
    assert client.delete(f"/api/dead-letters/{dl}", headers=auth).status_code == 404
    assert client.post(f"/api/dead-letters/{dl}/replay", headers=auth).status_code == 404
    assert audit_actions(settings, dl) == ["dead_letter.discard"]
    # the execution stays failed and readable
    assert client.get(f"/api/executions/{eid}", headers=auth).get_json()["status"] == "failed"


@pytest.mark.rabbitmq
def test_delete_takes_the_message_out_of_the_dead_letter_queue(settings_sqlite):
    import celeryconfig
    from tasks.queues import broker_counts, declare_queues, delete_queues

    settings = settings_sqlite.with_(
        broker_url=require_rabbitmq(), queue_name=f"cf_dl_{secrets.token_hex(4)}"
    )
    flask_app = create_app(settings)
    client = flask_app.test_client()
    auth = bearer(make_user(settings, "alice"))
    wid = create_workflow(client, auth)
    _, keep = fail_execution(settings, "alice", wid, task_id="keep-me")
    _, drop = fail_execution(settings, "alice", wid, task_id="drop-me")
    dead = celeryconfig.dead_letter_queue_name(settings.queue_name)
    with flask_app.app_context():
        from app.db import get_celery

        celery = get_celery()
    declare_queues(celery)
    try:
        with celery.producer_or_acquire() as producer:
            for task_id in ("keep-me", "drop-me", "other"):
                producer.publish(
                    {},
                    exchange=celeryconfig.DEAD_LETTER_EXCHANGE,
                    routing_key=dead,
                    headers={"id": task_id, "task": "canvasflow.run_node"},
                    serializer="json",
                    retry=True,
                )
        assert broker_counts(celery, [dead])[dead]["ready"] == 3
        assert client.delete(f"/api/dead-letters/{drop}", headers=auth).status_code == 204
        assert broker_counts(celery, [dead])[dead]["ready"] == 2  # the others went back
        report = client.get("/api/queue", headers=auth).get_json()["queues"][0]
        assert report["dead_lettered"] == 2 and report["dead_letter_rows"] == 1
        assert client.get(f"/api/dead-letters/{keep}", headers=auth).status_code == 200
    finally:
        delete_queues(celery)
        models.get_engine(settings.effective_database_url).dispose()


def test_execution_row_is_kept_after_discard(client, auth, settings):
    wid = create_workflow(client, auth)
    eid, dl = fail_execution(settings, "alice", wid)
    client.delete(f"/api/dead-letters/{dl}", headers=auth)
    with models.session_scope(settings.effective_database_url) as s:
        assert s.get(Execution, eid) is not None
        assert s.execute(select(DeadLetter).where(DeadLetter.id == dl)).first() is None

"""GET /api/queue, the worker list of /api/health, the metrics snapshot and /metrics.

The queue report is checked on the embedded default (in-process broker plus the database)
and on a real RabbitMQ (a queue of its own, nobody consuming it); the management API is
stood in for by a local HTTP server, since the plugin is optional.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import models
from app import create_app
from engine import runs
from models import Heartbeat, User, utcnow
from settings import Settings
from tests.conftest import bearer, make_user
from tests.services import require_rabbitmq

SLOW_DAG: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "t", "type": "transform", "config": {"expression": "1"}},
        {"id": "end", "type": "end"},
    ],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}],
}


def workflow(client, auth) -> str:
    response = client.post(
        "/api/workflows", json={"name": "q", "definition": SLOW_DAG}, headers=auth
    )
    assert response.status_code == 201
    return response.get_json()["id"]


def user_id(settings: Settings, name: str) -> str:
    from sqlalchemy import select

    with models.session_scope(settings.effective_database_url) as s:
        return s.execute(select(User.id).where(User.name == name)).scalar_one()


def run_steps(
    settings: Settings,
    uid: str,
    wid: str,
    through: list[str],
    fail: str | None = None,
    worker: str = "w@test",
) -> str:
    """Create an execution and take it through ``through`` (succeeded), then ``fail``."""
    url, chords = settings.effective_database_url, settings.native_chords
    with models.session_scope(url) as s:
        eid = runs.create_execution(
            s, user_id=uid, workflow_id=wid, version=1, input=None, chords=chords
        ).execution.id
    for node in through:
        with models.session_scope(url) as s:
            claim, _ = runs.claim_step(s, eid, node, chords=chords, repair=True, worker=worker)
            runs.complete_step(s, claim, {"node": node})
    if fail:
        with models.session_scope(url) as s:
            claim, _ = runs.claim_step(s, eid, fail, chords=chords, repair=True, worker=worker)
            runs.fail_step(s, claim, {"type": "boom", "message": "no"}, message={"id": eid})
    return eid


def claim(settings: Settings, eid: str, node: str, worker: str = "w@test") -> None:
    with models.session_scope(settings.effective_database_url) as s:
        c, _ = runs.claim_step(
            s, eid, node, chords=settings.native_chords, repair=True, worker=worker
        )
        assert c.kind == "run"


# -- /api/queue -------------------------------------------------------------------------------


def test_queue_on_the_embedded_default(settings_sqlite):
    settings = settings_sqlite.with_(queue_name=f"cf_q_{secrets.token_hex(4)}")
    flask_app = create_app(settings)
    client = flask_app.test_client()
    auth = bearer(make_user(settings, "alice"))
    wid = workflow(client, auth)
    uid = user_id(settings, "alice")
    run_steps(settings, uid, wid, ["start"], fail="t")  # one dead letter
    claim(settings, run_steps(settings, uid, wid, ["start"]), "t")  # one running step
    with flask_app.app_context():
        from app.db import get_celery

        celery = get_celery()
    for _ in range(3):  # three messages nobody consumes
        celery.send_task("canvasflow.nothing", args=(1,))
    response = client.get("/api/queue", headers=auth)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["broker"] == "embedded"
    assert body["queues"] == [
        {
            "name": settings.queue_name,
            "ready": 3,
            "unacked": 1,
            "consumers": 0,
            "dead_lettered": 1,
            "dead_letter_rows": 1,
            "source": {
                "ready": "broker",
                "unacked": "database",
                "consumers": "database",
                "dead_lettered": "database",
            },
        }
    ]
    assert client.get("/api/queue").status_code == 401


@pytest.mark.rabbitmq
def test_queue_on_rabbitmq_counts_ready_and_dead_lettered_from_the_broker(settings_sqlite):
    import celeryconfig
    from tasks.queues import declare_queues, delete_queues

    settings = settings_sqlite.with_(
        broker_url=require_rabbitmq(), queue_name=f"cf_q_{secrets.token_hex(4)}"
    )
    flask_app = create_app(settings)
    client = flask_app.test_client()
    auth = bearer(make_user(settings, "alice"))
    with flask_app.app_context():
        from app.db import get_celery

        celery = get_celery()
    # before any worker declared the queues: zeros, not an error
    before = client.get("/api/queue", headers=auth).get_json()["queues"][0]
    assert (before["ready"], before["dead_lettered"], before["consumers"]) == (0, 0, 0)
    declare_queues(celery)
    try:
        for _ in range(2):
            celery.send_task("canvasflow.nothing", args=(1,))
        dead = celeryconfig.dead_letter_queue_name(settings.queue_name)
        with celery.producer_or_acquire() as producer:
            producer.publish(
                {},
                exchange=celeryconfig.DEAD_LETTER_EXCHANGE,
                routing_key=dead,
                headers={"id": "x"},
                serializer="json",
                retry=True,
            )
        uid = user_id(settings, "alice")
        wid = workflow(client, auth)
        claim(settings, run_steps(settings, uid, wid, ["start"]), "t")
        body = client.get("/api/queue", headers=auth).get_json()
        assert body["broker"] == "rabbitmq"
        q = body["queues"][0]
        assert q["name"] == settings.queue_name and q["dead_letter_queue"] == dead
        assert (q["ready"], q["consumers"], q["dead_lettered"]) == (2, 0, 1)
        assert q["source"]["ready"] == q["source"]["dead_lettered"] == "broker"
        # the management plugin is optional: without it, unacked comes from running steps
        if q["source"]["unacked"] == "database":
            assert q["unacked"] == 1
        else:
            assert q["source"]["unacked"] == "management_api"
    finally:
        delete_queues(celery)


def test_queue_is_503_when_the_broker_is_down(settings_sqlite):
    settings = settings_sqlite.with_(broker_url="amqp://guest:guest@127.0.0.1:1//")
    client = create_app(settings).test_client()
    auth = bearer(make_user(settings, "alice"))
    response = client.get("/api/queue", headers=auth)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"


class FakeManagement:
    """A stand-in for the RabbitMQ management API: /api/queues/<vhost>/<name>."""

    def __init__(self, unacked: dict[str, int]) -> None:
        self.unacked = unacked
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.paths.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                ok = self.headers.get("Authorization", "").startswith("Basic ")
                status = 200 if ok and name in owner.unacked else 404
                raw = json.dumps({"messages_unacknowledged": owner.unacked.get(name, 0)}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_unacked_comes_from_the_management_api_when_it_answers():
    from tasks.queues import management_unacked

    fake = FakeManagement({"work": 7})
    try:
        settings = Settings(
            broker_url="amqp://u:p@rabbit.test:5672/prod",
            extra={"rabbitmq_management_url": fake.url},
        )
        assert management_unacked(settings, ["work"]) == {"work": 7}
        assert fake.paths == ["/api/queues/prod/work"]
        assert management_unacked(settings, ["missing"]) == {"missing": 0}
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    # down: None, and not asked again for a while
    assert management_unacked(settings, ["work"]) is None
    assert management_unacked(settings, ["work"]) is None
    assert len(fake.paths) == 2


def test_management_url_defaults_to_the_broker_host():
    from tasks.queues import management_url

    assert management_url(Settings(broker_url="amqp://g:g@mq.internal:5672//")) == (
        "http://mq.internal:15672"
    )
    assert (
        management_url(Settings(extra={"rabbitmq_management_url": "http://m:1/"})) == "http://m:1"
    )


# -- workers on /api/health -------------------------------------------------------------------


def beat_rows(settings: Settings, rows: list[tuple[str, str, float]]) -> None:
    now = utcnow()
    with models.session_scope(settings.effective_database_url) as s:
        for name, kind, age in rows:
            seen = now - timedelta(seconds=age)
            s.add(Heartbeat(name=name, kind=kind, info={"pid": 1}, started_at=seen, last_seen=seen))


def test_health_lists_workers_from_their_heartbeats(client, settings):
    beat_rows(
        settings,
        [
            ("fresh@h", "worker", 1),
            ("stale@h", "worker", 120),
            ("forgotten@h", "worker", 7200),
            ("beat@h", "beat", 1),
        ],
    )
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok"
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == {"fresh@h", "stale@h"}  # seen within the hour; beats are elsewhere
    assert workers["fresh@h"]["alive"] is True and workers["stale@h"]["alive"] is False
    assert set(workers["fresh@h"]) == {"name", "last_seen", "alive"}


# -- metrics --------------------------------------------------------------------------------


def test_metrics_snapshot(client, auth, other_auth, settings):
    wid = workflow(client, auth)
    uid = user_id(settings, "alice")
    for _ in range(3):
        run_steps(settings, uid, wid, ["start", "t", "end"])
    run_steps(settings, uid, wid, ["start"], fail="t")
    run_steps(settings, uid, wid, [])
    other = workflow(client, other_auth)
    run_steps(settings, user_id(settings, "bob"), other, ["start", "t", "end"])
    beat_rows(settings, [("fresh@h", "worker", 1), ("stale@h", "worker", 120)])
    response = client.get("/api/observability/metrics", headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    assert body["executions_by_status"] == {
        "pending": 0,
        "running": 1,
        "succeeded": 3,
        "failed": 1,
        "cancelled": 0,
    }
    latency = body["step_latency_ms"]
    assert latency["window_seconds"] == 3600
    assert set(latency["by_type"]) == {"start", "transform", "end"}
    assert latency["by_type"]["start"]["count"] == 4  # alice's only
    assert latency["by_type"]["transform"]["count"] == 4  # three succeeded, one failed
    for row in latency["by_type"].values():
        assert 0 <= row["p50"] <= row["p90"] <= row["p95"] <= row["p99"]
    tp = body["queue_throughput"]
    # every user's steps: alice 3x3 + 2, bob 3
    assert tp["steps_finished_5m"] == tp["steps_finished_15m"] == 14
    assert tp["steps_per_minute_5m"] == pytest.approx(14 / 5)
    assert tp["steps_per_minute_15m"] == pytest.approx(14 / 15, abs=1e-3)
    assert body["workers_alive"] == 1
    assert {w["name"] for w in body["workers"]} == {"fresh@h", "stale@h"}
    assert client.get("/api/observability/metrics").status_code == 401


def test_percentile_is_nearest_rank():
    from app.api.observability import percentile

    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.9, 0.99)] == [50.0, 90.0, 99.0]
    assert percentile([3.0], 0.99) == 3.0


def test_prometheus_endpoint_is_public_text_without_user_data(client, auth, settings):
    wid = workflow(client, auth)
    eid = run_steps(settings, user_id(settings, "alice"), wid, ["start", "t", "end"])
    beat_rows(settings, [("fresh@h", "worker", 1)])
    response = client.get("/metrics")  # no key
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("canvasflow_executions", (("status", "succeeded"),))] == 1
    assert samples[("canvasflow_steps_finished_total", (("status", "succeeded"),))] == 3
    assert samples[("canvasflow_workers_alive", ())] == 1
    assert samples[("canvasflow_step_latency_samples", (("node_type", "transform"),))] == 1
    assert (
        "canvasflow_step_latency_seconds",
        (("node_type", "transform"), ("quantile", "0.99")),
    ) in samples
    assert samples[("canvasflow_broker_up", ())] == 1
    assert (
        "canvasflow_queue_messages",
        (("queue", settings.queue_name), ("state", "ready")),
    ) in samples
    assert eid not in text and wid not in text and "fresh@h" not in text

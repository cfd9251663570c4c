"""POST /api/webhooks/{id}: signatures, refusals that start nothing, async and sync replies.

The async tests need no worker. The sync tests (TestSyncMode, last in the file) run a
real in-process engine (worker threads and ticker) on their own database and queue.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import migrations
import models
from app import create_app
from app.auth import create_user
from models import Execution, Trigger
from settings import Settings

TINY = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
    "edges": [{"source": "start", "target": "end"}],
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A queue of our own: messages published here never reach another test's worker.
    return settings.with_(queue_name=f"cf_webhooks_{secrets.token_hex(4)}")


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    message = body if timestamp is None else f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def workflow(client, auth, definition=TINY) -> str:
    response = client.post(
        "/api/workflows", json={"name": "w", "definition": definition}, headers=auth
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def webhook(client, auth, workflow_id, **config) -> str:
    response = client.post(
        "/api/triggers",
        json={"workflow_id": workflow_id, "type": "webhook", "config": {"mode": "async", **config}},
        headers=auth,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def executions(settings: Settings) -> list[Execution]:
    with models.session_scope(settings.effective_database_url) as s:
        return list(s.scalars(select(Execution)))


def execution_count(settings: Settings) -> int:
    with models.session_scope(settings.effective_database_url) as s:
        return s.scalar(select(func.count()).select_from(Execution))


@pytest.fixture
def hook(client, auth) -> str:
    return webhook(client, auth, workflow(client, auth))


# -- async mode and the input ----------------------------------------------------------------


def test_async_webhook_is_202_with_the_execution_and_its_input(client, hook, settings):
    response = client.post(
        f"/api/webhooks/{hook}?a=1&b=2&b=3",
        json={"order": 7},
        headers={"X-Custom": "yes", "Authorization": "Bearer secret-stuff"},
    )
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert set(body) == {"execution_id", "status"}
    assert response.headers["Location"] == f"/api/executions/{body['execution_id']}"
    [execution] = executions(settings)
    assert execution.id == body["execution_id"]
    assert execution.trigger_id == hook
    assert execution.input["body"] == {"order": 7}
    assert execution.input["query"] == {"a": "1", "b": ["2", "3"]}
    headers = execution.input["headers"]
    assert headers["x-custom"] == "yes"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers  # credentials are not stored
    with models.session_scope(settings.effective_database_url) as s:
        assert s.get(Trigger, hook).last_fired_at is not None


def test_non_json_bodies_arrive_as_text(client, hook, settings):
    client.post(
        f"/api/webhooks/{hook}", data="a=1&b=2", content_type="application/x-www-form-urlencoded"
    )
    client.post(f"/api/webhooks/{hook}", data="plain words", content_type="text/plain")
    client.post(f"/api/webhooks/{hook}", data='{"untyped": true}')
    client.post(f"/api/webhooks/{hook}")
    bodies = sorted((e.input["body"] for e in executions(settings)), key=json.dumps)
    assert bodies == sorted(["a=1&b=2", "plain words", {"untyped": True}, None], key=json.dumps)


def test_malformed_json_is_400_and_starts_nothing(client, hook, settings):
    response = client.post(f"/api/webhooks/{hook}", data="{oops", content_type="application/json")
    assert response.status_code == 400
    assert execution_count(settings) == 0


def test_idempotency_key_deduplicates_deliveries(client, auth, hook, settings):
    first = client.post(f"/api/webhooks/{hook}", json={"n": 1}, headers={"Idempotency-Key": "d-1"})
    again = client.post(f"/api/webhooks/{hook}", json={"n": 1}, headers={"Idempotency-Key": "d-1"})
    other = client.post(f"/api/webhooks/{hook}", json={"n": 2}, headers={"Idempotency-Key": "d-2"})
    assert first.status_code == again.status_code == other.status_code == 202
    assert again.get_json()["execution_id"] == first.get_json()["execution_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.get_json()["execution_id"] != first.get_json()["execution_id"]
    # the same key on another trigger of the same workflow is another delivery
    wf = executions(settings)[0].workflow_id
    second_hook = webhook(client, auth, wf)
    elsewhere = client.post(f"/api/webhooks/{second_hook}", headers={"Idempotency-Key": "d-1"})
    assert elsewhere.get_json()["execution_id"] != first.get_json()["execution_id"]
    assert execution_count(settings) == 3


def test_webhooks_need_no_api_key_but_other_routes_do(client, hook):
    assert client.post(f"/api/webhooks/{hook}").status_code == 202
    assert client.get(f"/api/triggers/{hook}").status_code == 401


# -- signatures ------------------------------------------------------------------------------


def test_correct_signature_is_accepted(client, auth, settings):
    hook = webhook(client, auth, workflow(client, auth), secret="topsecret")
    raw = b'{"x": 1}'
    response = client.post(
        f"/api/webhooks/{hook}",
        data=raw,
        content_type="application/json",
        headers={"X-Canvasflow-Signature": sign("topsecret", raw)},
    )
    assert response.status_code == 202, response.get_json()
    assert executions(settings)[0].input["body"] == {"x": 1}


def test_wrong_or_missing_signature_is_401_and_starts_nothing(client, auth, settings):
    hook = webhook(client, auth, workflow(client, auth), secret="topsecret")
    for header in (None, "", "sha256=" + "0" * 64, "sha1=abc", "garbage", "sha256=ünïcode"):
        headers = {} if header is None else {"X-Canvasflow-Signature": header}
        response = client.post(f"/api/webhooks/{hook}", data=b"{}", headers=headers)
        assert response.status_code == 401, header
        assert response.mimetype == "application/problem+json"
    assert execution_count(settings) == 0


def test_signature_of_another_body_or_secret_is_401(client, auth, settings):
    hook = webhook(client, auth, workflow(client, auth), secret="topsecret")
    for signature in (sign("topsecret", b'{"x": 2}'), sign("other", b'{"x": 1}')):
        response = client.post(
            f"/api/webhooks/{hook}", data=b'{"x": 1}', headers={"X-Canvasflow-Signature": signature}
        )
        assert response.status_code == 401
    assert execution_count(settings) == 0


def test_timestamped_signature_and_replay_window(client, auth, settings):
    hook = webhook(client, auth, workflow(client, auth), secret="k", max_skew_seconds=60)
    raw = b'{"ok": true}'
    now = str(int(time.time()))
    old = str(int(time.time()) - 600)

    def post(timestamp: str | None, signature: str) -> int:
        headers = {"X-Canvasflow-Signature": signature}
        if timestamp is not None:
            headers["X-Canvasflow-Timestamp"] = timestamp
        return client.post(f"/api/webhooks/{hook}", data=raw, headers=headers).status_code

    assert post(now, sign("k", raw)) == 401  # the timestamp is part of the signed message
    assert post(None, sign("k", raw)) == 401  # required with max_skew_seconds
    assert post(old, sign("k", raw, old)) == 401  # a replay from ten minutes ago
    assert post("yesterday", sign("k", raw, "yesterday")) == 401
    assert execution_count(settings) == 0
    assert post(now, sign("k", raw, now)) == 202
    assert execution_count(settings) == 1


# -- refusals start nothing ------------------------------------------------------------------


def test_unknown_trigger_is_404(client, auth, settings):
    assert client.post("/api/webhooks/nope", json={}).status_code == 404
    wf = workflow(client, auth)
    cron = client.post(
        "/api/triggers",
        json={"workflow_id": wf, "type": "cron", "config": {"cron": "* * * * *"}},
        headers=auth,
    ).get_json()["id"]
    response = client.post(f"/api/webhooks/{cron}", json={})  # not a webhook trigger
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert execution_count(settings) == 0


def test_disabled_trigger_is_409(client, auth, hook, settings):
    client.put(f"/api/triggers/{hook}", json={"enabled": False}, headers=auth)
    response = client.post(f"/api/webhooks/{hook}", json={})
    assert response.status_code == 409
    assert execution_count(settings) == 0


def test_deleted_workflow_makes_its_webhook_409(client, auth, settings):
    wf = workflow(client, auth)
    hook = webhook(client, auth, wf)
    client.delete(f"/api/workflows/{wf}", headers=auth)
    assert client.post(f"/api/webhooks/{hook}", json={}).status_code == 409
    assert execution_count(settings) == 0


def test_oversized_body_is_413_with_or_without_content_length(hook, settings):
    small = settings.with_(max_body_bytes=100)  # the same database, a smaller limit
    client = create_app(small).test_client()
    big = b'{"pad": "' + b"x" * 200 + b'"}'
    assert client.post(f"/api/webhooks/{hook}", data=big).status_code == 413
    chunked = client.post(
        f"/api/webhooks/{hook}",
        input_stream=io.BytesIO(big),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413
    assert chunked.mimetype == "application/problem+json"
    assert execution_count(small) == 0
    assert client.post(f"/api/webhooks/{hook}", data=b'{"small": 1}').status_code == 202


def test_backpressure_is_429_and_starts_nothing(client, hook, settings, monkeypatch):
    import tasks.backpressure

    monkeypatch.setattr(
        tasks.backpressure,
        "queue_depths",
        lambda s, app: {s.queue_name: {"ready": s.max_queue_depth + 1}},
    )
    response = client.post(f"/api/webhooks/{hook}", json={})
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    assert execution_count(settings) == 0


# -- sync mode: a real in-process engine -----------------------------------------------------


REPLY = {
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "reply",
            "type": "webhook_response",
            "config": {
                "status": 201,
                "headers": {"X-Reply": "yes"},
                "body": "${ {got: .input.body, q: .input.query.q} }",
            },
        },
        {"id": "end", "type": "end"},
    ],
    "edges": [{"source": "start", "target": "reply"}, {"source": "reply", "target": "end"}],
}
TEXT_REPLY = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "reply", "type": "webhook_response", "config": {"status": 200, "body": "pong"}},
        {"id": "end", "type": "end"},
    ],
    "edges": [{"source": "start", "target": "reply"}, {"source": "reply", "target": "end"}],
}
SLOW_REPLY = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "wait", "type": "delay", "config": {"seconds": 30}},
        {"id": "reply", "type": "webhook_response", "config": {"body": "late"}},
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "wait"},
        {"source": "wait", "target": "reply"},
        {"source": "reply", "target": "end"},
    ],
}
NO_REPLY = {
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "t",
            "type": "transform",
            "config": {"expression": "{doubled: (.input.body.n * 2)}"},
        },
        {"id": "end", "type": "end"},
    ],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}],
}
FAILS = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "t", "type": "transform", "config": {"expression": 'error("boom")'}},
        {"id": "end", "type": "end"},
    ],
    "edges": [{"source": "start", "target": "t"}, {"source": "t", "target": "end"}],
}


class Live:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = create_app(settings).test_client()
        with models.session_scope(settings.effective_database_url) as s:
            _, key = create_user(s, f"sync-{secrets.token_hex(3)}")
        self.auth = {"Authorization": f"Bearer {key}"}

    def hook(self, definition: dict[str, Any], **config: Any) -> str:
        return webhook(
            self.client,
            self.auth,
            workflow(self.client, self.auth, definition),
            mode="sync",
            **config,
        )


@pytest.fixture(
    scope="class", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """An app and an embedded engine (worker threads + ticker) on a database of their own."""
    from tasks.embedded import EmbeddedEngine

    data_dir: Path = tmp_path_factory.mktemp("sync-webhooks")
    database_url = ""
    if request.param == "postgres":
        from tests.conftest import truncate_all

        # The session's database; no test outside this class runs while the class does.
        database_url = request.getfixturevalue("postgres_url")
        truncate_all(database_url)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        action_allow_private=True,
        tick_seconds=0.1,
        queue_name=f"cf_sync_{secrets.token_hex(4)}",
    )
    migrations.upgrade(settings.effective_database_url)
    engine = EmbeddedEngine(settings).start()
    try:
        yield Live(settings)
    finally:
        engine.stop()
        if not database_url:
            models.get_engine(settings.effective_database_url).dispose()


class TestSyncMode:
    def test_reply_is_the_webhook_response_node(self, live: Live) -> None:
        hook = live.hook(REPLY, secret="s")
        raw = b'{"hello": "world"}'
        response = live.client.post(
            f"/api/webhooks/{hook}?q=42",
            data=raw,
            content_type="application/json",
            headers={"X-Canvasflow-Signature": sign("s", raw)},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.headers["X-Reply"] == "yes"
        assert response.mimetype == "application/json"
        assert response.get_json() == {"got": {"hello": "world"}, "q": "42"}
        assert response.headers["X-Canvasflow-Execution-Id"]

    def test_string_bodies_are_text_and_replays_get_the_same_reply(self, live: Live) -> None:
        hook = live.hook(TEXT_REPLY)
        first = live.client.post(f"/api/webhooks/{hook}", headers={"Idempotency-Key": "one"})
        again = live.client.post(f"/api/webhooks/{hook}", headers={"Idempotency-Key": "one"})
        for response in (first, again):
            assert response.status_code == 200
            assert response.get_data(as_text=True) == "pong"
            assert response.mimetype == "text/plain"
        assert again.headers["Idempotent-Replayed"] == "true"
        assert (
            again.headers["X-Canvasflow-Execution-Id"] == first.headers["X-Canvasflow-Execution-Id"]
        )

    def test_no_reply_in_time_is_504_and_the_execution_goes_on(self, live: Live) -> None:
        hook = live.hook(SLOW_REPLY, timeout_seconds=0.5)
        started = time.monotonic()
        response = live.client.post(f"/api/webhooks/{hook}", json={})
        assert time.monotonic() - started < 2.5
        assert response.status_code == 504
        assert response.mimetype == "application/problem+json"
        execution_id = response.get_json()["execution_id"]
        with models.session_scope(live.settings.effective_database_url) as s:
            assert s.get(Execution, execution_id).status == "running"  # not cancelled

    def test_finished_without_a_reply_is_200_with_the_output(self, live: Live) -> None:
        hook = live.hook(NO_REPLY)
        response = live.client.post(f"/api/webhooks/{hook}", json={"n": 21})
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["status"] == "succeeded"
        assert body["output"] == {"doubled": 42}

    def test_failed_without_a_reply_is_502(self, live: Live) -> None:
        hook = live.hook(FAILS)
        response = live.client.post(f"/api/webhooks/{hook}", json={})
        assert response.status_code == 502
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["execution_id"]

    def test_refusals_start_nothing_in_sync_mode_either(self, live: Live) -> None:
        hook = live.hook(REPLY, secret="s")
        with models.session_scope(live.settings.effective_database_url) as s:
            before = s.scalar(select(func.count()).select_from(Execution))
        assert live.client.post(f"/api/webhooks/{hook}", data=b"{}").status_code == 401
        with models.session_scope(live.settings.effective_database_url) as s:
            assert s.scalar(select(func.count()).select_from(Execution)) == before

"""The trigger API: CRUD for manual, webhook and cron triggers, validation, ownership, fire."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import models
from models import AuditLog, Execution, Trigger, utcnow


def make_workflow(client, auth, definition, name="wf") -> str:
    response = client.post(
        "/api/workflows", json={"name": name, "definition": definition}, headers=auth
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def create_trigger(client, auth, workflow_id, type_, config=None, **extra) -> dict[str, Any]:
    body = {"workflow_id": workflow_id, "type": type_, **extra}
    if config is not None:
        body["config"] = config
    response = client.post("/api/triggers", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def count(settings, model) -> int:
    with models.session_scope(settings.effective_database_url) as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def workflow_id(client, auth, tiny_dag) -> str:
    return make_workflow(client, auth, tiny_dag)


# -- create ----------------------------------------------------------------------------------


def test_create_cron_trigger_computes_next_fire_at(client, auth, workflow_id):
    body = create_trigger(
        client, auth, workflow_id, "cron", {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}
    )
    assert body["type"] == "cron" and body["enabled"] is True
    assert body["config"] == {
        "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin",
        "input": None,
        "misfire": "fire_once",
    }
    next_fire = at(body["next_fire_at"])
    assert utcnow() < next_fire <= utcnow() + timedelta(minutes=5)
    assert next_fire.minute % 5 == 0 and next_fire.second == 0
    assert body["last_fired_at"] is None
    assert "url" not in body


def test_create_webhook_trigger_has_url_and_shows_secret_once(client, auth, workflow_id):
    body = create_trigger(client, auth, workflow_id, "webhook", {"mode": "sync", "secret": "s3"})
    assert body["url"] == f"http://localhost/api/webhooks/{body['id']}"
    assert body["config"] == {"mode": "sync", "secret": "s3"}
    again = client.get(f"/api/triggers/{body['id']}", headers=auth).get_json()
    assert again["config"]["secret"] == "***"
    assert again["url"] == body["url"]
    listed = client.get("/api/triggers", headers=auth).get_json()["items"]
    assert listed[0]["config"]["secret"] == "***"


def test_create_manual_trigger_with_empty_config(client, auth, workflow_id):
    body = create_trigger(client, auth, workflow_id, "manual")
    assert body["config"] == {} and body["type"] == "manual"
    assert "next_fire_at" not in body


def test_create_disabled_cron_has_no_next_fire_at(client, auth, workflow_id):
    body = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"}, enabled=False)
    assert body["enabled"] is False and body["next_fire_at"] is None


BAD_CRON_CONFIGS = [
    ({"cron": "61 * * * *"}, "/config/cron", "minute field '61'"),
    ({"cron": "* * *"}, "/config/cron", "expected 5 fields"),
    ({"cron": "0 0 30 2 *"}, "/config/cron", "never fires"),
    ({"cron": "* * * * *", "timezone": "Mars/Base"}, "/config/timezone", "unknown time zone"),
    ({"cron": "* * * * *", "misfire": "later"}, "/config/misfire", "fire_once"),
    ({"cron": "* * * * *", "every": 5}, "/config/every", "Extra inputs"),
    ({}, "/config/cron", "field required"),
]


def test_bad_cron_config_is_422_saying_why(client, auth, workflow_id, settings):
    for config, pointer, fragment in BAD_CRON_CONFIGS:
        response = client.post(
            "/api/triggers",
            json={"workflow_id": workflow_id, "type": "cron", "config": config},
            headers=auth,
        )
        assert response.status_code == 422, config
        assert response.mimetype == "application/problem+json"
        errors = response.get_json()["errors"]
        assert any(e["pointer"] == pointer and fragment in e["message"] for e in errors), errors
    assert count(settings, Trigger) == 0


def test_bad_cron_and_bad_timezone_are_both_reported(client, auth, workflow_id):
    response = client.post(
        "/api/triggers",
        json={
            "workflow_id": workflow_id,
            "type": "cron",
            "config": {"cron": "nope", "timezone": "Nowhere/Land"},
        },
        headers=auth,
    )
    assert response.status_code == 422
    assert {e["pointer"] for e in response.get_json()["errors"]} == {
        "/config/cron",
        "/config/timezone",
    }


BAD_BODIES = [
    ({"type": "webhook", "config": {"mode": "later"}}, "/config/mode"),
    ({"type": "webhook", "config": {}}, "/config/mode"),
    (
        {"type": "webhook", "config": {"mode": "sync", "timeout_seconds": 0}},
        "/config/timeout_seconds",
    ),
    ({"type": "webhook", "config": {"mode": "sync", "secret": ""}}, "/config/secret"),
    ({"type": "manual", "config": {"cron": "* * * * *"}}, "/config/cron"),
    ({"type": "hourly", "config": {}}, "/type"),
    ({"type": "cron", "config": "* * * * *"}, "/config"),
    ({"type": "cron", "config": {"cron": "* * * * *"}, "enabled": "yes"}, "/enabled"),
]


def test_bad_trigger_bodies_are_422(client, auth, workflow_id, settings):
    for body, pointer in BAD_BODIES:
        response = client.post(
            "/api/triggers", json={"workflow_id": workflow_id, **body}, headers=auth
        )
        assert response.status_code == 422, response.get_json()
        assert pointer in [e["pointer"] for e in response.get_json()["errors"]], body
    assert count(settings, Trigger) == 0


def test_workflow_of_another_user_is_404_pointing_at_workflow_id(
    client, auth, other_auth, tiny_dag, settings
):
    theirs = make_workflow(client, other_auth, tiny_dag)
    response = client.post(
        "/api/triggers", json={"workflow_id": theirs, "type": "manual"}, headers=auth
    )
    assert response.status_code == 404
    assert response.get_json()["errors"][0]["pointer"] == "/workflow_id"
    assert count(settings, Trigger) == 0


def test_deleted_workflow_is_404(client, auth, workflow_id):
    assert client.delete(f"/api/workflows/{workflow_id}", headers=auth).status_code == 204
    response = client.post(
        "/api/triggers", json={"workflow_id": workflow_id, "type": "manual"}, headers=auth
    )
    assert response.status_code == 404


def test_triggers_need_an_api_key(client):
    assert client.get("/api/triggers").status_code == 401
    assert client.post("/api/triggers", json={}).status_code == 401


# -- read, list ------------------------------------------------------------------------------


def test_another_users_trigger_is_404(client, auth, other_auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "manual")
    url = f"/api/triggers/{trigger['id']}"
    assert client.get(url, headers=other_auth).status_code == 404
    assert client.put(url, json={"enabled": False}, headers=other_auth).status_code == 404
    assert client.delete(url, headers=other_auth).status_code == 404
    assert client.post(f"{url}/fire", headers=other_auth).status_code == 404
    assert client.get("/api/triggers", headers=other_auth).get_json()["items"] == []
    assert client.get(url, headers=auth).status_code == 200


def test_list_paginates_and_filters(client, auth, workflow_id, tiny_dag):
    other_wf = make_workflow(client, auth, tiny_dag, name="other")
    ids = [create_trigger(client, auth, workflow_id, "manual")["id"] for _ in range(3)]
    cron = create_trigger(client, auth, other_wf, "cron", {"cron": "0 * * * *"})["id"]
    page = client.get("/api/triggers?limit=2", headers=auth).get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"/api/triggers?limit=2&cursor={page['next_cursor']}", headers=auth)
    seen = [t["id"] for t in page["items"] + rest.get_json()["items"]]
    assert sorted(seen) == sorted([*ids, cron])
    by_type = client.get("/api/triggers?type=cron", headers=auth).get_json()["items"]
    assert [t["id"] for t in by_type] == [cron]
    by_wf = client.get(f"/api/triggers?workflow_id={workflow_id}", headers=auth).get_json()
    assert sorted(t["id"] for t in by_wf["items"]) == sorted(ids)
    bad = client.get("/api/triggers?type=hourly", headers=auth)
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["pointer"] == "/query/type"


def test_unknown_trigger_is_404(client, auth):
    assert client.get("/api/triggers/nope", headers=auth).status_code == 404


# -- update ----------------------------------------------------------------------------------


def test_changing_the_cron_reschedules(client, auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "0 0 1 1 *"})
    assert at(trigger["next_fire_at"]).month == 1
    response = client.put(
        f"/api/triggers/{trigger['id']}",
        json={"config": {"cron": "* * * * * *"}},
        headers=auth,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert at(body["next_fire_at"]) <= utcnow() + timedelta(seconds=2)
    assert body["config"]["cron"] == "* * * * * *"
    assert at(body["updated_at"]) > at(trigger["updated_at"])


def test_changing_only_the_input_keeps_next_fire_at(client, auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "0 0 1 1 *"})
    body = client.put(
        f"/api/triggers/{trigger['id']}",
        json={"config": {"cron": "0 0 1 1 *", "input": {"x": 1}}},
        headers=auth,
    ).get_json()
    assert body["next_fire_at"] == trigger["next_fire_at"]
    assert body["config"]["input"] == {"x": 1}


def test_disable_clears_and_enable_recomputes_next_fire_at(client, auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"})
    url = f"/api/triggers/{trigger['id']}"
    off = client.put(url, json={"enabled": False}, headers=auth).get_json()
    assert off["enabled"] is False and off["next_fire_at"] is None
    on = client.put(url, json={"enabled": True}, headers=auth).get_json()
    assert on["enabled"] is True and at(on["next_fire_at"]) > utcnow()


def test_put_revalidates(client, auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"})
    url = f"/api/triggers/{trigger['id']}"
    bad = client.put(url, json={"config": {"cron": "* * * * *", "timezone": "X/Y"}}, headers=auth)
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["pointer"] == "/config/timezone"
    retype = client.put(url, json={"type": "webhook"}, headers=auth)
    assert retype.status_code == 422
    assert retype.get_json()["errors"][0]["pointer"] == "/config"
    null = client.put(url, json={"enabled": None}, headers=auth)
    assert null.status_code == 422
    assert client.get(url, headers=auth).get_json() == trigger  # nothing changed


def test_put_can_change_type(client, auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"})
    body = client.put(
        f"/api/triggers/{trigger['id']}",
        json={"type": "webhook", "config": {"mode": "async"}},
        headers=auth,
    ).get_json()
    assert body["type"] == "webhook" and body["url"].endswith(trigger["id"])
    assert "next_fire_at" not in body


def test_masked_secret_sent_back_keeps_the_secret(client, auth, workflow_id, settings):
    trigger = create_trigger(
        client, auth, workflow_id, "webhook", {"mode": "async", "secret": "k1"}
    )
    url = f"/api/triggers/{trigger['id']}"
    shown = client.get(url, headers=auth).get_json()
    response = client.put(url, json={"config": {**shown["config"], "mode": "sync"}}, headers=auth)
    assert response.status_code == 200
    with models.session_scope(settings.effective_database_url) as s:
        assert s.get(Trigger, trigger["id"]).config == {"mode": "sync", "secret": "k1"}
    client.put(url, json={"config": {"mode": "sync", "secret": "k2"}}, headers=auth)
    with models.session_scope(settings.effective_database_url) as s:
        assert s.get(Trigger, trigger["id"]).config["secret"] == "k2"


def test_enabling_a_trigger_of_a_deleted_workflow_is_404(client, auth, workflow_id):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"})
    client.delete(f"/api/workflows/{workflow_id}", headers=auth)
    url = f"/api/triggers/{trigger['id']}"
    assert client.get(url, headers=auth).get_json()["enabled"] is False
    response = client.put(url, json={"enabled": True}, headers=auth)
    assert response.status_code == 404
    assert response.get_json()["errors"][0]["pointer"] == "/workflow_id"


# -- delete, fire, audit ---------------------------------------------------------------------


def test_delete_is_204_then_404(client, auth, workflow_id, settings):
    trigger = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"})
    url = f"/api/triggers/{trigger['id']}"
    assert client.delete(url, headers=auth).status_code == 204
    assert client.get(url, headers=auth).status_code == 404
    assert client.delete(url, headers=auth).status_code == 404
    assert count(settings, Trigger) == 0


def test_fire_manual_trigger_starts_an_execution(client, auth, workflow_id, settings):
    trigger = create_trigger(client, auth, workflow_id, "manual", {"input": {"default": True}})
    url = f"/api/triggers/{trigger['id']}/fire"
    response = client.post(url, headers=auth)
    assert response.status_code == 202, response.get_json()
    first = response.get_json()
    assert first["trigger_id"] == trigger["id"]
    with_input = client.post(url, json={"input": [1, 2]}, headers=auth).get_json()
    with models.session_scope(settings.effective_database_url) as s:
        rows = {e.id: e for e in s.scalars(select(Execution))}
        assert rows[first["execution_id"]].input == {"default": True}
        assert rows[first["execution_id"]].trigger_id == trigger["id"]
        assert rows[with_input["execution_id"]].input == [1, 2]
    again = client.post(url, json={"idempotency_key": "k"}, headers=auth)
    replay = client.post(url, json={"idempotency_key": "k"}, headers=auth)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["execution_id"] == again.get_json()["execution_id"]
    assert count(settings, Execution) == 3
    got = client.get(f"/api/triggers/{trigger['id']}", headers=auth).get_json()
    assert got["last_fired_at"] is not None


def test_fire_is_409_for_disabled_or_non_manual_triggers(client, auth, workflow_id, settings):
    off = create_trigger(client, auth, workflow_id, "manual", enabled=False)
    cron = create_trigger(client, auth, workflow_id, "cron", {"cron": "* * * * *"})
    for trigger in (off, cron):
        response = client.post(f"/api/triggers/{trigger['id']}/fire", headers=auth)
        assert response.status_code == 409
    assert count(settings, Execution) == 0


def test_every_change_is_audited(client, auth, workflow_id, settings):
    config = {"mode": "async", "secret": "sekrit-value"}
    trigger = create_trigger(client, auth, workflow_id, "webhook", config)
    manual = create_trigger(client, auth, workflow_id, "manual")
    url = f"/api/triggers/{trigger['id']}"
    client.put(url, json={"enabled": False}, headers=auth)
    client.post(f"/api/triggers/{manual['id']}/fire", headers=auth)
    client.delete(url, headers=auth)
    with models.session_scope(settings.effective_database_url) as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.entity_type == "trigger").order_by(AuditLog.id)
        ).all()
        actions = [(r.action, r.entity_id) for r in rows]
        details = [r.detail for r in rows]
    assert actions == [
        ("trigger.create", trigger["id"]),
        ("trigger.create", manual["id"]),
        ("trigger.update", trigger["id"]),
        ("trigger.fire", manual["id"]),
        ("trigger.delete", trigger["id"]),
    ]
    assert "sekrit-value" not in str(details)

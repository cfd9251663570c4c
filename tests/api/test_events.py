"""POST /api/events: CloudEvents in structured and binary HTTP modes."""

from __future__ import annotations

import json

from flask.testing import FlaskClient
from sqlalchemy import select

from models import CloudEvent, session_scope
from settings import Settings

EVENT = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/orders",
    "type": "com.example.order.placed",
    "data": {"order": 42},
}


def stored(settings: Settings) -> list[CloudEvent]:
    with session_scope(settings.effective_database_url) as s:
        return list(s.execute(select(CloudEvent).order_by(CloudEvent.id)).scalars())


def test_structured_event_is_stored_for_the_caller(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    r = client.post(
        "/api/events",
        data=json.dumps(EVENT),
        headers={**auth, "Content-Type": "application/cloudevents+json"},
    )
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["event_id"] == "evt-1"
    [row] = stored(settings)
    assert (row.event_id, row.source, row.type) == ("evt-1", "/orders", "com.example.order.placed")
    assert row.data["data"] == {"order": 42}


def test_binary_mode_takes_attributes_from_ce_headers(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    headers = {
        **auth,
        "ce-specversion": "1.0",
        "ce-id": "evt-2",
        "ce-source": "/pay",
        "ce-type": "paid",
        "Content-Type": "application/json",
    }
    r = client.post("/api/events", data=json.dumps({"amount": 5}), headers=headers)
    assert r.status_code == 202, r.get_json()
    [row] = stored(settings)
    assert (row.event_id, row.type) == ("evt-2", "paid")
    assert row.data["data"] == {"amount": 5}


def test_missing_attributes_are_one_422_listing_each(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    r = client.post(
        "/api/events",
        data=json.dumps({"specversion": "1.0", "data": 1}),
        headers={**auth, "Content-Type": "application/cloudevents+json"},
    )
    assert r.status_code == 422
    assert r.content_type == "application/problem+json"
    assert {e["pointer"] for e in r.get_json()["errors"]} == {"/id", "/source", "/type"}
    assert stored(settings) == []


def test_malformed_json_is_400_and_no_key_is_401(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    r = client.post(
        "/api/events",
        data="{nope",
        headers={**auth, "Content-Type": "application/cloudevents+json"},
    )
    assert r.status_code == 400 and r.content_type == "application/problem+json"
    r = client.post(
        "/api/events",
        data=json.dumps(EVENT),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert r.status_code == 401
    assert stored(settings) == []

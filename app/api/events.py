"""POST /api/events: CloudEvents in, for Serverless Workflow ``listen`` tasks.

Both CloudEvents HTTP modes: *structured* (``Content-Type: application/cloudevents+json``,
the whole event as the body) and *binary* (attributes in ``ce-*`` headers, the body as
``data``). Events belong to the caller: a ``listen`` only sees its own user's events.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, Field

from engine.errors import InvalidInput, Problem
from models import CloudEvent

from ..auth import current_user_id
from ..bodies import body_text, parse_json, plain_json, require_object
from ..db import get_session
from ..openapi import responses, spec

bp = Blueprint("events", __name__)
TAGS = ["events"]
STRUCTURED = "application/cloudevents+json"
REQUIRED = ("specversion", "id", "source", "type")


class EventAccepted(BaseModel):
    """The stored event."""

    id: int = Field(description="the stored event's row id")
    event_id: str = Field(description="the CloudEvent's own id")


def _structured() -> dict[str, Any]:
    event = require_object(parse_json(body_text()))
    missing = [name for name in REQUIRED if not isinstance(event.get(name), str) or not event[name]]
    if missing:
        raise InvalidInput(
            [Problem(f"/{name}", "required CloudEvent attribute is missing") for name in missing]
        )
    return event


def _binary() -> dict[str, Any]:
    event: dict[str, Any] = {}
    for header, value in request.headers.items():
        if header.lower().startswith("ce-") and len(header) > 3:
            event[header[3:].lower()] = value
    missing = [name for name in REQUIRED if not event.get(name)]
    if missing:
        raise InvalidInput(
            [
                Problem(f"/headers/ce-{name}", "required CloudEvent header is missing")
                for name in missing
            ]
        )
    raw = request.get_data(cache=True)
    if raw.strip():
        mimetype = request.mimetype or "application/json"
        event["datacontenttype"] = request.content_type or mimetype
        if mimetype == "application/json" or mimetype.endswith("+json"):
            event["data"] = parse_json(body_text())
        else:
            event["data"] = plain_json(raw.decode("utf-8", errors="replace"))
    return event


@bp.post("/api/events")
@spec.validate(
    resp=responses(400, 401, 413, 422, HTTP_202=EventAccepted), tags=TAGS, skip_validation=True
)
def ingest_event():
    """Store one CloudEvent (structured or binary mode) for this user's ``listen`` tasks."""
    user_id = current_user_id()
    event = _structured() if request.mimetype == STRUCTURED else _binary()
    row = CloudEvent(
        user_id=user_id,
        event_id=str(event["id"])[:255],
        source=str(event["source"])[:500],
        type=str(event["type"])[:255],
        data=event,
    )
    session = get_session()
    session.add(row)
    session.commit()
    return jsonify({"id": row.id, "event_id": row.event_id}), 202

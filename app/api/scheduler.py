"""GET /api/scheduler/status: is beat alive, when did it last tick, when do cron triggers fire.

Beat processes (and the embedded ticker of ``canvasflow dev``) write a ``beat``
heartbeat row about once a second (tasks/cron.py). One seen within ``3 x tick_seconds
+ 5 s`` counts as alive. Beat is shared by everyone; the triggers listed are yours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from models import Heartbeat, Trigger, utcnow

from ..auth import current_user_id
from ..db import get_session, get_settings
from ..openapi import responses, spec

bp = Blueprint("scheduler", __name__)
TAGS = ["scheduler"]
# Instances unseen for longer than this are left out of the reply.
SHOWN_FOR = timedelta(hours=1)
MAX_TRIGGERS = 1000


class BeatInstance(BaseModel):
    name: str = Field(description="beat@<host>:<pid> (embedded@... in canvasflow dev)")
    alive: bool
    started_at: datetime
    last_seen: datetime


class BeatStatus(BaseModel):
    alive: bool = Field(description="some beat wrote a heartbeat within 3 x tick + 5 s")
    last_tick: datetime | None
    instances: list[BeatInstance]


class CronTriggerStatus(BaseModel):
    id: str
    workflow_id: str
    cron: str
    timezone: str
    enabled: bool
    next_fire_at: datetime | None
    last_fired_at: datetime | None


class SchedulerStatus(BaseModel):
    beat: BeatStatus
    triggers: list[CronTriggerStatus]


def alive_window(tick_seconds: float) -> timedelta:
    """How recent a heartbeat must be to count as alive."""
    return timedelta(seconds=3 * tick_seconds + 5)


def _last_tick(row: Heartbeat) -> datetime:
    raw = (row.info or {}).get("last_tick")
    try:
        return datetime.fromisoformat(raw) if isinstance(raw, str) else row.last_seen
    except ValueError:
        return row.last_seen


@bp.get("/api/scheduler/status")
@spec.validate(resp=responses(401, HTTP_200=SchedulerStatus), tags=TAGS, skip_validation=True)
def scheduler_status():
    """Beat liveness and last tick, and the next fire time of each of your cron triggers."""
    session = get_session()
    now = utcnow()
    window = alive_window(get_settings().tick_seconds)
    beats = session.scalars(
        select(Heartbeat)
        .where(Heartbeat.kind == "beat", Heartbeat.last_seen >= now - SHOWN_FOR)
        .order_by(Heartbeat.last_seen.desc())
    ).all()
    instances: list[dict[str, Any]] = [
        {
            "name": b.name,
            "alive": now - b.last_seen <= window,
            "started_at": b.started_at,
            "last_seen": b.last_seen,
        }
        for b in beats
    ]
    triggers = session.scalars(
        select(Trigger)
        .where(Trigger.user_id == current_user_id(), Trigger.type == "cron")
        .order_by(Trigger.created_at, Trigger.id)
        .limit(MAX_TRIGGERS)
    ).all()
    return jsonify(
        {
            "beat": {
                "alive": any(i["alive"] for i in instances),
                "last_tick": max((_last_tick(b) for b in beats), default=None),
                "instances": instances,
            },
            "triggers": [
                {
                    "id": t.id,
                    "workflow_id": t.workflow_id,
                    "cron": (t.config or {}).get("cron"),
                    "timezone": (t.config or {}).get("timezone") or "UTC",
                    "enabled": t.enabled,
                    "next_fire_at": t.next_fire_at,
                    "last_fired_at": t.last_fired_at,
                }
                for t in triggers
            ],
        }
    )

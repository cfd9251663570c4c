"""GET /api/queue: how much work waits, runs and lies dead, per queue.

On RabbitMQ, ``ready``, ``consumers`` and ``dead_lettered`` (the depth of
``<queue>.dead``) come from the broker by passive declare. AMQP has no count of
unacknowledged messages: ``unacked`` comes from the management API when the plugin
answers (``extra["rabbitmq_management_url"]``, else the broker host on port 15672), and
otherwise from the database: steps ``running``, each holding one unacked message under
acks_late. ``source`` says where each number came from. On the embedded default the
in-process broker gives ``ready``; the database gives the rest. The counts cover the whole
queue (every user's work), not one user's rows.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from engine.errors import ServiceUnavailable

from ..db import get_celery, get_settings
from ..openapi import responses, spec

bp = Blueprint("queue", __name__)
TAGS = ["queue"]

Source = Literal["broker", "management_api", "database"]


class QueueSources(BaseModel):
    """Where each count came from."""

    ready: Source
    unacked: Source
    consumers: Source
    dead_lettered: Source


class QueueOut(BaseModel):
    """One work queue."""

    name: str
    ready: int = Field(description="messages waiting for a worker")
    unacked: int = Field(description="messages delivered to a worker and not yet acknowledged")
    consumers: int = Field(
        description="consumers on the queue (live workers on the embedded default)"
    )
    dead_lettered: int = Field(
        description="messages in the dead-letter queue (rows on the embedded default)"
    )
    dead_letter_queue: str | None = Field(
        None, description="the dead-letter queue's name (RabbitMQ)"
    )
    dead_letter_rows: int = Field(description="dead-letter rows not replayed yet, every user's")
    source: QueueSources


class QueueReport(BaseModel):
    """Every work queue of this deployment."""

    broker: Literal["rabbitmq", "embedded"]
    queues: list[QueueOut]


@bp.get("/api/queue")
@spec.validate(resp=responses(401, 503, HTTP_200=QueueReport), tags=TAGS, skip_validation=True)
def queue():
    """Ready, unacked, consumers and dead-lettered counts per queue, with their sources."""
    from kombu.exceptions import OperationalError

    from tasks.queues import queue_report

    try:
        report = queue_report(get_settings(), get_celery())
    except (OSError, OperationalError) as exc:
        raise ServiceUnavailable(f"the broker is unreachable: {type(exc).__name__}") from exc
    response = jsonify(report)
    response.headers["Cache-Control"] = "no-store"
    return response

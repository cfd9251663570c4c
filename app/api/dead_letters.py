"""/api/dead-letters: steps that failed for good, kept with their error and message.

A step that fails after its retries (or with an error that is never retried) fails its
execution; the worker records a dead-letter row (execution, node, error, the Celery
message) and rejects the message without requeue, so on RabbitMQ the broker moves it to
``<queue>.dead``. The database row is the record: replaying re-runs the step through the
engine (the raw message is not republished), and both replay and discard take the
matching message out of the dead-letter queue (found by task id). On the embedded
default there is no dead-letter queue; the same routes work from the rows alone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine import runs
from models import DeadLetter, Execution

from .. import audit
from ..auth import current_user_id, get_owned
from ..bodies import choice_arg, query_arg
from ..db import get_celery, get_session, get_settings
from ..openapi import responses, spec
from ..pagination import PageQuery, page_args, paginate

bp = Blueprint("dead_letters", __name__)
log = logging.getLogger("canvasflow.api")
TAGS = ["dead letters"]
STATUSES = ("dead", "replayed")


class DeadLetterQuery(PageQuery):
    """Query of GET /api/dead-letters."""

    execution_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    status: Literal["dead", "replayed"] | None = Field(
        None, description="dead: not replayed yet; replayed: its step was re-run"
    )


class DeadLetterOut(BaseModel):
    """A step that failed for good: its error and the message the broker dead-lettered."""

    id: str
    execution_id: str
    workflow_id: str | None
    node_id: str
    error: dict[str, Any] | None
    message: dict[str, Any] | None = Field(
        description="the Celery message: task, id, args, kwargs, retries, delivery_info"
    )
    queue: str | None
    status: Literal["dead", "replayed"]
    created_at: datetime
    replayed_at: datetime | None


class DeadLetterPage(BaseModel):
    """One page of dead letters, newest first."""

    items: list[DeadLetterOut]
    next_cursor: str | None


class ReplayOut(BaseModel):
    """What a replay queued."""

    id: str
    execution_id: str
    node_id: str
    status: Literal["replayed"]
    replayed_at: datetime
    resumed_nodes: list[str] = Field(description="the steps published to resume the execution")
    removed_from_queue: int = Field(description="messages taken out of the dead-letter queue")


def serialize(row: DeadLetter, workflow_id: str | None = None) -> dict[str, Any]:
    """The JSON form of a dead-letter row."""
    return {
        "id": row.id,
        "execution_id": row.execution_id,
        "workflow_id": workflow_id,
        "node_id": row.node_id,
        "error": row.error,
        "message": row.message,
        "queue": row.queue,
        "status": row.status,
        "created_at": row.created_at,
        "replayed_at": row.replayed_at,
    }


def _task_id(row: DeadLetter) -> str | None:
    message = row.message or {}
    task_id = message.get("id")
    return task_id if isinstance(task_id, str) else None


def _remove_messages(rows: list[DeadLetter]) -> int:
    """Take the rows' messages out of the broker's dead-letter queue (best effort)."""
    from tasks.queues import remove_dead_letter_messages

    ids = {t for t in (_task_id(r) for r in rows) if t}
    try:
        return remove_dead_letter_messages(get_settings(), get_celery(), ids)
    except Exception:  # the row is the record: a broker hiccup must not undo the action
        log.warning(
            "could not remove %d message(s) from the dead-letter queue", len(ids), exc_info=True
        )
        return 0


@bp.get("/api/dead-letters")
@spec.validate(
    query=DeadLetterQuery,
    resp=responses(400, 401, 422, HTTP_200=DeadLetterPage),
    tags=TAGS,
    skip_validation=True,
)
def list_dead_letters():
    """Your dead-lettered steps, newest first; filter by execution, workflow, node, status."""
    limit, cursor = page_args()
    stmt = select(DeadLetter).where(DeadLetter.user_id == current_user_id())
    for name in ("execution_id", "node_id"):
        value = query_arg(name)
        if value:
            stmt = stmt.where(getattr(DeadLetter, name) == value)
    workflow_id = query_arg("workflow_id")
    if workflow_id:
        stmt = stmt.where(
            DeadLetter.execution_id.in_(
                select(Execution.id).where(Execution.workflow_id == workflow_id)
            )
        )
    status = choice_arg("status", STATUSES)
    if status:
        stmt = stmt.where(DeadLetter.status == status)
    session = get_session()
    page = paginate(session, stmt, DeadLetter, limit, cursor, lambda row: row)
    executions = {row.execution_id for row in page["items"]}
    workflows: dict[str, str] = {}
    if executions:
        stmt = select(Execution.id, Execution.workflow_id).where(Execution.id.in_(executions))
        workflows = {eid: wid for eid, wid in session.execute(stmt)}
    page["items"] = [serialize(row, workflows.get(row.execution_id)) for row in page["items"]]
    return jsonify(page)


def _owned(dead_letter_id: str) -> tuple[DeadLetter, str | None]:
    session = get_session()
    row = get_owned(session, DeadLetter, dead_letter_id)
    workflow_id = session.execute(
        select(Execution.workflow_id).where(Execution.id == row.execution_id)
    ).scalar_one_or_none()
    return row, workflow_id


@bp.get("/api/dead-letters/<dead_letter_id>")
@spec.validate(resp=responses(401, 404, HTTP_200=DeadLetterOut), tags=TAGS, skip_validation=True)
def get_dead_letter(dead_letter_id: str):
    """One dead letter with its error and the dead-lettered message."""
    row, workflow_id = _owned(dead_letter_id)
    return jsonify(serialize(row, workflow_id))


@bp.delete("/api/dead-letters/<dead_letter_id>")
@spec.validate(resp=responses(401, 404, HTTP_204=None), tags=TAGS, skip_validation=True)
def discard_dead_letter(dead_letter_id: str):
    """Discard: the row is deleted and its message leaves the dead-letter queue (204)."""
    row, _ = _owned(dead_letter_id)
    session = get_session()
    detail = {"execution_id": row.execution_id, "node_id": row.node_id, "status": row.status}
    session.delete(row)
    audit.record(session, current_user_id(), "dead_letter.discard", "dead_letter", row.id, detail)
    session.commit()
    _remove_messages([row])
    return "", 204


@bp.post("/api/dead-letters/<dead_letter_id>/replay")
@spec.validate(resp=responses(401, 404, 409, HTTP_202=ReplayOut), tags=TAGS, skip_validation=True)
def replay_dead_letter(dead_letter_id: str):
    """Re-run the step and resume its execution from there (202); 409 if not possible now."""
    from tasks.publish import publish_node

    row, _ = _owned(dead_letter_id)
    settings = get_settings()
    session = get_session()
    replay = runs.replay_dead_letter(session, row.id, chords=settings.native_chords)
    audit.record(
        session,
        current_user_id(),
        "dead_letter.replay",
        "dead_letter",
        row.id,
        {
            "execution_id": replay.execution_id,
            "node_id": replay.node_id,
            "resumed_nodes": replay.publish,
        },
    )
    session.commit()
    celery = get_celery()
    # Committed first: a crash before these publishes leaves pending steps the ticker republishes.
    for node_id in replay.publish:
        publish_node(celery, replay.execution_id, node_id)
    removed = _remove_messages(replay.dead_letters)
    response = jsonify(
        {
            "id": row.id,
            "execution_id": replay.execution_id,
            "node_id": replay.node_id,
            "status": "replayed",
            "replayed_at": row.replayed_at,
            "resumed_nodes": replay.publish,
            "removed_from_queue": removed,
        }
    )
    response.status_code = 202
    response.headers["Location"] = f"/api/executions/{replay.execution_id}"
    return response

"""/api/executions: start, read, list, cancel, retry and the timeline of executions.

A thin layer over ``tasks.service`` (start) and ``engine.runs`` (state): the view commits
the rows, then publishes; the ticker republishes anything a crash loses in between.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from engine import runs
from engine.errors import InvalidInput, NotFound
from engine.states import ExecutionStatus
from models import Execution, StepExecution

from .. import audit
from ..auth import current_user_id, get_owned
from ..bodies import (
    choice_arg,
    json_object,
    problems_from_validation_error,
    query_arg,
)
from ..db import get_celery, get_session, get_settings
from ..openapi import responses, spec
from ..pagination import MAX_LIMIT, page_args, paginate

bp = Blueprint("executions", __name__)
TAGS = ["executions"]
STATUSES = [s.value for s in ExecutionStatus]


class ExecutionCreate(BaseModel):
    """Body of POST /api/executions."""

    model_config = ConfigDict(strict=True, extra="forbid")

    workflow_id: str = Field(min_length=1, max_length=64)
    input: Any = Field(None, description="any JSON value; the start node's output")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="the same key again returns the first execution",
    )


class StepOut(BaseModel):
    node_id: str
    node_type: str
    status: str
    attempts: int
    input: Any
    output: Any
    error: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None
    wake_at: datetime | None


class ExecutionSummary(BaseModel):
    id: str
    workflow_id: str
    workflow_version: int
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    input: Any
    output: Any
    error: dict[str, Any] | None
    trigger_id: str | None
    idempotency_key: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ExecutionOut(ExecutionSummary):
    steps: list[StepOut]


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None


class ExecutionListQuery(BaseModel):
    workflow_id: str | None = None
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"] | None = None
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class TimelineEntry(BaseModel):
    node_id: str
    status: str
    attempt: int
    started_at: str | None
    finished_at: str | None
    duration_ms: float | None


def summary(e: Execution) -> dict[str, Any]:
    return {
        "id": e.id,
        "workflow_id": e.workflow_id,
        "workflow_version": e.workflow_version,
        "status": e.status,
        "input": e.input,
        "output": e.output,
        "error": e.error,
        "trigger_id": e.trigger_id,
        "idempotency_key": e.idempotency_key,
        "created_at": e.created_at,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
    }


def step_json(s: StepExecution) -> dict[str, Any]:
    return {
        "node_id": s.node_id,
        "node_type": s.node_type,
        "status": s.status,
        "attempts": s.attempts,
        "input": s.input,
        "output": s.output,
        "error": s.error,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "wake_at": s.wake_at,
    }


def execution_json(session: Any, e: Execution) -> dict[str, Any]:
    return {**summary(e), "steps": [step_json(s) for s in runs.steps_of(session, e.id)]}


@bp.get("/api/executions")
@spec.validate(
    query=ExecutionListQuery,
    resp=responses(400, 401, 422, HTTP_200=ExecutionPage),
    tags=TAGS,
    skip_validation=True,
)
def list_executions():
    """List your executions, newest first; filter by workflow_id and status."""
    limit, cursor = page_args()
    stmt = select(Execution).where(Execution.user_id == current_user_id())
    workflow_id = query_arg("workflow_id")
    if workflow_id:
        stmt = stmt.where(Execution.workflow_id == workflow_id)
    status = choice_arg("status", STATUSES)
    if status:
        stmt = stmt.where(Execution.status == status)
    return jsonify(paginate(get_session(), stmt, Execution, limit, cursor, summary))


@bp.post("/api/executions")
@spec.validate(
    json=ExecutionCreate,
    resp=responses(400, 401, 404, 413, 422, 429, 503, HTTP_202=ExecutionSummary),
    tags=TAGS,
    skip_validation=True,
)
def start_execution():
    """Start an execution of a workflow's current version (202); idempotent with idempotency_key."""
    try:
        body = ExecutionCreate.model_validate(json_object())
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation_error(exc)) from None
    from tasks.backpressure import check_backpressure
    from tasks.service import start_execution as start

    settings = get_settings()
    user_id = current_user_id()
    celery = get_celery()
    check_backpressure(settings, celery)
    execution, created = start(
        settings,
        celery,
        user_id=user_id,
        workflow_id=body.workflow_id,
        input=body.input,
        idempotency_key=body.idempotency_key,
    )
    if created:
        session = get_session()
        audit.record(
            session,
            user_id,
            "execution.start",
            "execution",
            execution.id,
            {"workflow_id": body.workflow_id, "version": execution.workflow_version},
        )
        session.commit()
    response = jsonify(summary(execution))
    response.status_code = 202
    response.headers["Location"] = f"/api/executions/{execution.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/api/executions/<execution_id>")
@spec.validate(resp=responses(401, 404, HTTP_200=ExecutionOut), tags=TAGS, skip_validation=True)
def get_execution(execution_id: str):
    """An execution with every step's status, attempts, input, output and error."""
    session = get_session()
    return jsonify(execution_json(session, get_owned(session, Execution, execution_id)))


@bp.post("/api/executions/<execution_id>/cancel")
@spec.validate(
    resp=responses(401, 404, 409, HTTP_200=ExecutionOut), tags=TAGS, skip_validation=True
)
def cancel_execution(execution_id: str):
    """Cancel: running steps are revoked, pending ones become cancelled; 409 if already finished."""
    from tasks.publish import revoke

    session = get_session()
    execution = get_owned(session, Execution, execution_id)
    task_ids = runs.cancel_execution(session, execution.id)
    audit.record(session, current_user_id(), "execution.cancel", "execution", execution.id, None)
    session.commit()
    revoke(get_celery(), task_ids)
    session.refresh(execution)
    return jsonify(execution_json(session, execution))


@bp.post("/api/executions/<execution_id>/retry")
@spec.validate(
    resp=responses(401, 404, 409, HTTP_202=ExecutionSummary), tags=TAGS, skip_validation=True
)
def retry_execution(execution_id: str):
    """Resume a failed execution from its failed steps, keeping what succeeded (202)."""
    from tasks.service import resume_execution

    session = get_session()
    execution = get_owned(session, Execution, execution_id)
    session.close()
    resume_execution(get_settings(), get_celery(), execution.id)
    session = get_session()
    audit.record(session, current_user_id(), "execution.retry", "execution", execution.id, None)
    session.commit()
    execution = session.get(Execution, execution.id)
    if execution is None:  # pragma: no cover - rows are never deleted
        raise NotFound(f"Execution {execution_id} not found.")
    response = jsonify(summary(execution))
    response.status_code = 202
    return response


@bp.get("/api/executions/<execution_id>/timeline")
@spec.validate(
    resp=responses(401, 404, HTTP_200=list[TimelineEntry]), tags=TAGS, skip_validation=True
)
def timeline(execution_id: str):
    """Every attempt of every step in start order, with durations."""
    session = get_session()
    execution = get_owned(session, Execution, execution_id)
    return jsonify(runs.timeline(session, execution.id))

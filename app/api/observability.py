"""/api/observability: what happened, for the current user.

Only the audit log lives here for now; the metrics snapshot
(GET /api/observability/metrics) is to be added to this blueprint below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.errors import InvalidInput, Problem
from models import AuditLog

from .. import audit
from ..auth import current_user_id
from ..bodies import query_arg, query_problem
from ..db import get_session
from ..openapi import responses, spec
from ..pagination import PageQuery, page_args, paginate

bp = Blueprint("observability", __name__)

TAGS = ["observability"]


class AuditQuery(PageQuery):
    """Query of GET /api/observability/audit."""

    action: str | None = Field(
        None, description="e.g. workflow.create, workflow.update, workflow.delete"
    )
    entity_id: str | None = None
    since: datetime | None = Field(None, description="ISO 8601; entries at or after")
    until: datetime | None = Field(None, description="ISO 8601; entries before")


class AuditEntry(BaseModel):
    """Who did what to which entity, and when."""

    id: int
    action: str
    entity_type: str
    entity_id: str | None
    detail: dict[str, Any] | None
    created_at: datetime


class AuditPage(BaseModel):
    """One page of audit entries, newest first."""

    items: list[AuditEntry]
    next_cursor: str | None


def _time_arg(name: str, problems: list[Problem]) -> datetime | None:
    raw = query_arg(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))  # a raw '+' in a URL reads as a space
    except ValueError:
        problems.append(query_problem(name, "must be an ISO 8601 date-time"))
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@bp.get("/api/observability/audit")
@spec.validate(
    query=AuditQuery, resp=responses(400, 401, HTTP_200=AuditPage), tags=TAGS, skip_validation=True
)
def list_audit():
    """Your audit log, newest first, filterable by action, entity and time."""
    limit, cursor = page_args()
    problems: list[Problem] = []
    since, until = _time_arg("since", problems), _time_arg("until", problems)
    if problems:
        raise InvalidInput(problems)
    stmt = select(AuditLog).where(AuditLog.user_id == current_user_id())
    action, entity_id = query_arg("action"), query_arg("entity_id")
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if entity_id:
        stmt = stmt.where(AuditLog.entity_id == entity_id)
    if since:
        stmt = stmt.where(AuditLog.created_at >= since)
    if until:
        stmt = stmt.where(AuditLog.created_at < until)
    return jsonify(paginate(get_session(), stmt, AuditLog, limit, cursor, audit.serialize))


# -- metrics ---------------------------------------------------------------------------------
# GET /api/observability/metrics (executions by status, step latency percentiles, queue
# throughput) belongs here, on this same ``bp``.

"""The audit trail: who changed what, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import AuditLog


def record(
    session: Session,
    user_id: str | None,
    action: str,
    entity_type: str,
    entity_id: str | None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Add one audit row (``action`` like ``workflow.update``); the caller commits."""
    entry = AuditLog(
        user_id=user_id, action=action, entity_type=entity_type, entity_id=entity_id, detail=detail
    )
    session.add(entry)
    return entry


def serialize(entry: AuditLog) -> dict[str, Any]:
    """The JSON form of an audit row."""
    return {
        "id": entry.id,
        "action": entry.action,
        "entity_type": entry.entity_type,
        "entity_id": entry.entity_id,
        "detail": entry.detail,
        "created_at": entry.created_at,
    }

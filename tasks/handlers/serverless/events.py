"""``emit`` and ``listen``: CloudEvents stored per user, polled by listeners.

A cursor is ``(since, last id)``: a listen sees the events created from its start on,
each once, oldest first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from models import CloudEvent, session_scope


def store_event(url: str, user_id: str, event: dict[str, Any]) -> None:
    """Store the event for this user; listeners of the same user see it."""
    with session_scope(url) as session:
        session.add(
            CloudEvent(
                user_id=user_id,
                event_id=str(event.get("id"))[:255],
                source=str(event.get("source") or "")[:500] or None,
                type=str(event.get("type") or "")[:255] or None,
                data=event,
            )
        )


def start_cursor(since: datetime) -> Any:
    """A cursor for the events created from ``since`` on."""
    return (since, 0)


def events_after(url: str, user_id: str, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
    """The user's events after ``cursor``, oldest first."""
    since, last_id = cursor
    with session_scope(url) as session:
        rows = session.execute(
            select(CloudEvent.id, CloudEvent.data)
            .where(
                CloudEvent.user_id == user_id,
                CloudEvent.created_at >= since,
                CloudEvent.id > last_id,
            )
            .order_by(CloudEvent.id)
            .limit(500)
        ).all()
    if not rows:
        return [], cursor
    return [r.data for r in rows if isinstance(r.data, dict)], (since, rows[-1].id)

"""Keyset pagination, newest first: ``{"items": [...], "next_cursor": str | null}``.

The cursor is the (created_at, id) of the last item served, as url-safe base64 JSON;
clients treat it as opaque. Keyset rather than OFFSET: rows inserted meanwhile neither
repeat nor vanish from later pages, and deep pages cost the same as the first.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from engine.errors import BadRequest, InvalidInput

from .bodies import query_arg, query_problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageQuery(BaseModel):
    """``?limit=&cursor=``, for documenting list routes (``spec.validate(query=PageQuery)``)."""

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="next_cursor of the previous page")


def page_args() -> tuple[int, str | None]:
    """``(limit, cursor)`` from ``?limit=&cursor=``; a bad limit is 422."""
    raw = query_arg("limit")
    limit = DEFAULT_LIMIT
    if raw is not None and raw != "":
        try:
            limit = int(raw)
        except ValueError:
            raise InvalidInput([query_problem("limit", "must be an integer")]) from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput([query_problem("limit", f"must be between 1 and {MAX_LIMIT}")])
    return limit, query_arg("cursor") or None


def encode_cursor(created_at: datetime, id: Any) -> str:
    """The opaque cursor pointing just after the row (created_at, id)."""
    raw = json.dumps({"c": created_at.isoformat(), "i": id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, Any]:
    """(created_at, id) from a cursor; anything we did not issue is 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["c"])
        id = data["i"]
        if created_at.tzinfo is None or not isinstance(id, str | int) or isinstance(id, bool):
            raise ValueError("bad cursor fields")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadRequest(
            "Invalid cursor; pass next_cursor from a previous page as it is."
        ) from None
    return created_at, id


def paginate(
    session: Session,
    stmt: Select[Any],
    model: Any,
    limit: int,
    cursor: str | None,
    serialize: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """One page of ``stmt`` (a ``select(Model)`` with its filters) newest first.

    ``model`` must have ``created_at`` and ``id`` columns; ``serialize`` turns a row into
    its JSON item.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput([query_problem("limit", f"must be between 1 and {MAX_LIMIT}")])
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        if isinstance(last_id, int) != _int_ids(model):
            raise BadRequest("Invalid cursor; pass next_cursor from a previous page as it is.")
        stmt = stmt.where(
            or_(
                model.created_at < created_at,
                and_(model.created_at == created_at, model.id < last_id),
            )
        )
    stmt = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return {"items": [serialize(row) for row in rows], "next_cursor": next_cursor}


def _int_ids(model: Any) -> bool:
    return model.id.type.python_type is int

"""Bearer API keys: issuing them, checking them on every /api request, owning rows.

A key reads ``cf_<prefix8>_<secret>``. Only its SHA-256 is stored (``ApiKey.key_hash``),
beside the prefix so a leaked key can be recognised in logs without the secret. Rows
are always read through :func:`get_owned`: another user's id is 404, never 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Flask, g, request
from sqlalchemy import Integer, select, update
from sqlalchemy.orm import Session

from engine.errors import Conflict, NotFound, Unauthorized
from models import ApiKey, User, utcnow

from .db import get_session

# Routes anyone may call: health probes, signed webhooks and the API description.
PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json"})
PUBLIC_PREFIXES = ("/api/webhooks/", "/api/docs")

_KEY_RE = re.compile(r"cf_([0-9a-f]{8})_([A-Za-z0-9_-]{32,128})")
# Recording last use on every request would be a write per read; once a while is plenty.
_LAST_USED_EVERY = timedelta(minutes=5)

T = TypeVar("T")


def hash_key(plaintext: str) -> str:
    """The stored form of a key: SHA-256 hex."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session, user_id: str, *, name: str | None = None, expires_at: datetime | None = None
) -> str:
    """Add a key for ``user_id`` (not committed) and return its plaintext, shown once."""
    prefix = secrets.token_hex(4)
    plaintext = f"cf_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiKey(
            user_id=user_id,
            prefix=prefix,
            key_hash=hash_key(plaintext),
            name=name,
            expires_at=expires_at,
        )
    )
    session.flush()
    return plaintext


def create_user(session: Session, name: str) -> tuple[User, str]:
    """Add a user with one API key (not committed); 409 if the name is taken."""
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"A user named {name!r} already exists.")
    user = User(name=name)
    session.add(user)
    session.flush()
    return user, create_api_key(session, user.id)


def authenticate(session: Session, authorization: str | None) -> str:
    """The user id behind an ``Authorization: Bearer`` header, or Unauthorized."""
    if not authorization:
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be 'Bearer <key>'.")
    match = _KEY_RE.fullmatch(token)
    if match is None:
        raise Unauthorized("Invalid API key.")
    digest = hash_key(token)
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
    if key is None or not (
        hmac.compare_digest(key.key_hash, digest)
        and hmac.compare_digest(key.prefix, match.group(1))
    ):
        raise Unauthorized("Invalid API key.")
    now = utcnow()
    if key.revoked_at is not None:
        raise Unauthorized("This API key was revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("This API key has expired.")
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_EVERY:
        _touch(session, key.id, now)
    return key.user_id


def _touch(session: Session, key_id: str, now: datetime) -> None:
    try:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
        session.commit()
    except Exception:  # bookkeeping only: a busy database must not fail the request
        session.rollback()


def is_public(path: str) -> bool:
    """True for routes that need no API key."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def current_user_id() -> str:
    """The authenticated user of this request."""
    user_id = g.get("user_id")
    if user_id is None:
        raise Unauthorized("This route needs an API key.")
    return user_id


def get_owned(
    session: Session,
    model: type[T],
    id: Any,
    *,
    include_deleted: bool = False,
    for_update: bool = False,
) -> T:
    """The row of ``model`` with ``id`` owned by the current user, else NotFound.

    Soft-deleted rows (``deleted_at`` set) count as missing unless ``include_deleted``.
    """
    entity = model.__name__
    column = model.id  # type: ignore[attr-defined]
    if isinstance(column.type, Integer):
        try:
            id = int(id)
        except (TypeError, ValueError):
            raise NotFound(f"{entity} {id} not found.") from None
    elif not isinstance(id, str) or not id or len(id) > 64 or "\x00" in id:
        raise NotFound(f"{entity} {id} not found.")
    stmt = select(model).where(column == id, model.user_id == current_user_id())  # type: ignore[attr-defined]
    if not include_deleted and hasattr(model, "deleted_at"):
        stmt = stmt.where(model.deleted_at.is_(None))  # type: ignore[attr-defined]
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"{entity} {id} not found.")
    return row


def _require_key() -> None:
    # Unknown routes and wrong methods fall through to their 404/405 problem.
    if (
        request.method == "OPTIONS"
        or request.routing_exception is not None
        or not request.path.startswith("/api/")
        or is_public(request.path)
    ):
        return
    g.user_id = authenticate(get_session(), request.headers.get("Authorization"))


def init_app(app: Flask) -> None:
    """Check the bearer key before every protected /api request."""
    app.before_request(_require_key)

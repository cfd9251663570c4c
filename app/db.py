"""The request-scoped database session and the lazily built Celery app."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

import models
from settings import Settings

_celery_lock = threading.Lock()


def get_settings() -> Settings:
    """The Settings the current app was built with."""
    return current_app.extensions["canvasflow"]


def get_session() -> Session:
    """This request's session; closed (uncommitted work rolled back) at teardown."""
    session = g.get("_canvasflow_session")
    if session is None:
        factory = models.get_sessionmaker(get_settings().effective_database_url)
        session = g._canvasflow_session = factory()
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("_canvasflow_session", None)
    if session is not None:
        # close() rolls back whatever the view did not commit, error or not.
        session.close()


def get_celery() -> Any | None:
    """The Celery app from ``tasks.celery_app.make_celery``, built once per Flask app.

    None while the tasks package does not exist yet (the API still serves workflows).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    celery = app.extensions.get("celery")
    if celery is not None:
        return celery
    with _celery_lock:
        celery = app.extensions.get("celery")
        if celery is None:
            try:
                from tasks.celery_app import make_celery
            except ImportError as exc:
                if exc.name not in {"tasks", "tasks.celery_app"}:
                    raise
                return None
            celery = app.extensions["celery"] = make_celery(get_settings())
    return celery


def init_app(app: Flask) -> None:
    """Close the request session at teardown; leave the Celery slot empty until needed."""
    app.extensions["celery"] = None
    app.teardown_appcontext(_close_session)

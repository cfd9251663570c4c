"""The yardstick: plain Celery tasks on the same app, broker and worker as Canvasflow."""

from __future__ import annotations

import threading

import requests

from tasks.celery_app import celery_app

_local = threading.local()


@celery_app.task(name="bench.noop")
def noop(*args: object, **kwargs: object) -> None:
    return None


@celery_app.task(name="bench.http_get")
def http_get(url: str) -> int:
    """What an `action` node does at its core: one GET on a pooled session, JSON decoded."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    response = session.get(url, timeout=10)
    response.raise_for_status()
    response.json()
    return response.status_code

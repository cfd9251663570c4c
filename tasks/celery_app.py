"""The Celery app: ``celery -A tasks.celery_app worker`` (or ``canvasflow worker``)."""

from __future__ import annotations

from celery import Celery

import celeryconfig
from settings import Settings

from . import runtime

celery_app = Celery("canvasflow", include=["tasks.node"])
app = celery_app  # `celery -A tasks.celery_app` looks for `app` or `celery`


def configure(settings: Settings) -> Celery:
    """Point the app at ``settings`` (broker, backend, database) before it connects."""
    runtime.set_settings(settings)
    celery_app.conf.update(celeryconfig.build(settings))
    return celery_app


def make_celery(settings: Settings | None = None) -> Celery:
    """The configured app for ``settings`` (the API and the CLI use this)."""
    return configure(settings or runtime.settings())


configure(runtime.settings())


"""The yardstick: a no-op Celery task on the same app, broker and worker as Canvasflow."""

from __future__ import annotations

from tasks.celery_app import celery_app


@celery_app.task(name="bench.noop")
def noop(*args: object, **kwargs: object) -> None:
    return None

"""Backpressure: refuse new work while the broker already holds too much."""

from __future__ import annotations

from celery import Celery

from engine.errors import ServiceUnavailable, TooManyRequests
from settings import Settings

from .queues import queue_depths


def check_backpressure(settings: Settings, app: Celery) -> None:
    """Raise TooManyRequests (429 + Retry-After) when ready messages exceed the configured depth."""
    if settings.max_queue_depth <= 0:
        return
    try:
        depth = queue_depths(settings, app)[settings.queue_name]["ready"]
    except OSError as exc:
        raise ServiceUnavailable(f"the broker is unreachable: {exc}") from exc
    if depth > settings.max_queue_depth:
        raise TooManyRequests(
            f"{depth} messages are waiting in queue {settings.queue_name!r} "
            f"(limit {settings.max_queue_depth}); try again shortly",
            retry_after=5,
        )

"""Queue depths from the broker, for /api/queue and backpressure."""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery

import celeryconfig
from settings import Settings

_cache: dict[str, tuple[float, dict[str, dict[str, int]]]] = {}
_lock = threading.Lock()


def queue_depths(settings: Settings, app: Celery, max_age: float = 1.0) -> dict[str, dict[str, int]]:
    """``{queue: {"ready", "unacked", "consumers"}}`` for the work queue and its dead-letter queue.

    Cached for ``max_age`` seconds: backpressure asks on every start.
    """
    key = f"{settings.broker_url}|{settings.queue_name}"
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < max_age:
            return hit[1]
    names = [settings.queue_name]
    if not settings.embedded_broker:
        names.append(celeryconfig.dead_letter_queue_name(settings.queue_name))
    out: dict[str, dict[str, int]] = {}
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        for name in names:
            try:
                ok = channel.queue_declare(queue=name, passive=True)
                out[name] = {"ready": int(ok.message_count), "consumers": int(ok.consumer_count)}
            except Exception:  # not declared yet: no worker has started
                channel = conn.channel()
                out[name] = {"ready": 0, "consumers": 0}
    with _lock:
        _cache[key] = (now, out)
    return out


def declare_queues(app: Celery) -> None:
    """Declare every configured queue, dead-letter queue included.

    A worker declares only the queues it consumes; without this the broker would drop
    rejected messages for lack of a queue bound to the dead-letter exchange.
    """
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues or ():
            queue(channel).declare()


def delete_queues(app: Celery) -> None:
    """Remove the configured queues (test teardown)."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues or ():
            try:
                queue(channel).delete()
            except Exception:  # already gone
                channel = conn.channel()

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


def queue_depths(
    settings: Settings, app: Celery, max_age: float = 1.0
) -> dict[str, dict[str, int]]:
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


def queue_mismatch(app: Celery, settings: Settings) -> str | None:
    """Why the configured queues cannot be declared as they exist on the broker, if so.

    A queue keeps the type and arguments it was first declared with: a classic queue from
    an earlier setup refuses a quorum declaration. Better said before the worker starts.
    """
    from amqp.exceptions import PreconditionFailed

    try:
        declare_queues(app)
    except PreconditionFailed as exc:
        return (
            f"the broker refused the declaration of queue {settings.queue_name!r} (or its "
            f"dead-letter queue): {exc.reply_text}. It was made with other arguments, such as "
            f"another queue type (this setup wants {settings.queue_type!r}). Set "
            "CANVASFLOW_QUEUE_TYPE to the queue's type, use a new CANVASFLOW_QUEUE name, or "
            "delete the old queue once it is empty."
        )
    except Exception:  # the broker is not reachable yet: the worker retries on its own
        return None
    return None


def delete_queues(app: Celery) -> None:
    """Remove the configured queues (test teardown)."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues or ():
            try:
                queue(channel).delete()
            except Exception:  # already gone
                channel = conn.channel()


# -- /api/queue: one report per work queue ----------------------------------------------------

MANAGEMENT_PORT = 15672
# A management API that did not answer is not asked again for this long.
_MANAGEMENT_RETRY_SECONDS = 30.0
_management_down: dict[str, float] = {}


def broker_counts(app: Celery, names: list[str]) -> dict[str, dict[str, int] | None]:
    """``{queue: {"ready", "consumers"}}`` by passive declare, uncached; None if not declared.

    Connection errors propagate (kombu's OperationalError, or an OSError).
    """
    out: dict[str, dict[str, int] | None] = {}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        channel: Any = conn.channel()
        try:
            for name in names:
                try:
                    ok = channel.queue_declare(queue=name, passive=True)
                except conn.channel_errors:  # 404 NOT_FOUND: not declared; the channel is closed
                    out[name] = None
                    channel = conn.channel()
                    continue
                out[name] = {"ready": int(ok.message_count), "consumers": int(ok.consumer_count)}
        finally:
            try:
                channel.close()
            except Exception:  # pragma: no cover - a closed channel is fine
                pass
    return out


def management_url(settings: Settings) -> str:
    """The RabbitMQ management API: ``extra["rabbitmq_management_url"]``, else broker host:15672."""
    configured = settings.extra.get("rabbitmq_management_url")
    if configured:
        return str(configured).rstrip("/")
    from kombu.utils.url import url_to_parts

    host = url_to_parts(settings.broker_url).hostname or "localhost"
    return f"http://{host}:{MANAGEMENT_PORT}"


def management_unacked(settings: Settings, names: list[str]) -> dict[str, int] | None:
    """Unacknowledged messages per queue from the management API; None where it is off.

    AMQP itself only reports ready messages and consumers; the plugin is optional, so a
    refused connection is remembered for a while instead of slowing every request.
    """
    import requests
    from kombu.utils.url import url_to_parts

    base = management_url(settings)
    if time.monotonic() < _management_down.get(base, 0.0):
        return None
    parts = url_to_parts(settings.broker_url)
    auth = (parts.username or "guest", parts.password or "guest")
    vhost = parts.path or "/"
    out: dict[str, int] = {}
    try:
        for name in names:
            resp = requests.get(
                f"{base}/api/queues/{_quote(vhost)}/{_quote(name)}", auth=auth, timeout=1.0
            )
            if resp.status_code == 404:
                out[name] = 0
                continue
            resp.raise_for_status()
            out[name] = int(resp.json().get("messages_unacknowledged") or 0)
    except (requests.RequestException, ValueError):
        _management_down[base] = time.monotonic() + _MANAGEMENT_RETRY_SECONDS
        return None
    return out


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def database_counts(settings: Settings) -> dict[str, int]:
    """What the record knows: running steps, dead letters not replayed, live workers."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from models import DeadLetter, Heartbeat, StepExecution, session_scope, utcnow

    timeout = float(settings.extra.get("heartbeat_timeout", 30))
    with session_scope(settings.effective_database_url) as s:
        running = s.execute(
            select(func.count()).select_from(StepExecution).where(StepExecution.status == "running")
        ).scalar_one()
        dead = s.execute(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.status == "dead")
        ).scalar_one()
        seen = utcnow() - timedelta(seconds=timeout)
        workers = s.execute(
            select(func.count())
            .select_from(Heartbeat)
            .where(Heartbeat.kind == "worker", Heartbeat.last_seen >= seen)
        ).scalar_one()
    return {"running": int(running), "dead_letters": int(dead), "workers": int(workers)}


def queue_report(settings: Settings, app: Celery) -> dict[str, Any]:
    """Ready, unacked, consumers and dead-lettered counts of the work queue, each with its source.

    On RabbitMQ: ready, consumers and dead-lettered (the ``<queue>.dead`` depth) come from
    the broker; unacked from the management API when enabled, else from the database
    (steps ``running``, each holding one unacked message under acks_late). On the embedded
    default the in-process broker gives ready; the rest comes from the database.
    """
    name = settings.queue_name
    dead_name = celeryconfig.dead_letter_queue_name(name)
    db = database_counts(settings)
    source: dict[str, str] = {}
    if settings.embedded_broker:
        counts = broker_counts(app, [name]).get(name) or {"ready": 0}
        entry = {
            "name": name,
            "ready": counts["ready"],
            "unacked": db["running"],
            "consumers": db["workers"],
            "dead_lettered": db["dead_letters"],
        }
        source = {
            "ready": "broker",
            "unacked": "database",
            "consumers": "database",
            "dead_lettered": "database",
        }
        broker = "embedded"
    else:
        found = broker_counts(app, [name, dead_name])
        work = found.get(name) or {"ready": 0, "consumers": 0}
        dead = found.get(dead_name) or {"ready": 0}
        unacked = management_unacked(settings, [name])
        entry = {
            "name": name,
            "ready": work["ready"],
            "unacked": unacked[name] if unacked is not None else db["running"],
            "consumers": work["consumers"],
            "dead_lettered": dead["ready"],
            "dead_letter_queue": dead_name,
        }
        source = {
            "ready": "broker",
            "consumers": "broker",
            "dead_lettered": "broker",
            "unacked": "database" if unacked is None else "management_api",
        }
        broker = "rabbitmq"
    entry["dead_letter_rows"] = db["dead_letters"]
    entry["source"] = source
    return {"broker": broker, "queues": [entry]}


def remove_dead_letter_messages(
    settings: Settings, app: Celery, task_ids: set[str], limit: int = 10_000
) -> int:
    """Take the messages of ``task_ids`` out of the dead-letter queue; returns how many.

    AMQP cannot fetch a message by id: every message is got (unacked) in turn, the
    matches are acked and the rest nacked back with requeue once the scan is over, so
    the scan sees each message once. Nothing to do on the embedded broker (no DLQ).
    """
    if settings.embedded_broker or not task_ids:
        return 0
    from kombu import Queue

    removed = 0
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        channel = conn.channel()
        try:
            queue = Queue(celeryconfig.dead_letter_queue_name(settings.queue_name), channel=channel)
            try:
                size = queue.queue_declare(passive=True).message_count
            except conn.channel_errors:  # no dead-letter queue yet: nothing to remove
                return 0
            held = []
            for _ in range(min(size, limit)):
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                if message_task_id(message.headers or {}, message.properties or {}) in task_ids:
                    message.ack()
                    removed += 1
                else:
                    held.append(message)
            for message in held:
                message.requeue()
        finally:
            channel.close()
    return removed


def message_task_id(headers: dict[str, Any], properties: dict[str, Any]) -> str | None:
    """The Celery task id of a raw message (protocol 2 header, or the correlation id)."""
    return headers.get("id") or properties.get("correlation_id")

"""Celery configuration, derived from :class:`settings.Settings` (DESIGN.md baseline).

``celery -A tasks.celery_app`` reads the module-level names; ``build(settings)`` gives the
same values for an explicit Settings (tests, the embedded mode).
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from settings import Settings

DEAD_LETTER_EXCHANGE = "canvasflow.dlx"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


# A poison message (one that kills its worker every time) goes to the dead-letter queue
# after this many deliveries instead of looping (quorum queues count them).
DELIVERY_LIMIT = 50


def make_queues(settings: Settings) -> tuple[Queue, ...]:
    """The work queue, dead-lettering to a durable DLQ on rejection (Reject(requeue=False)).

    Quorum queues (DESIGN.md): replicated, with at-least-once dead-lettering (which needs
    reject-publish overflow) and a delivery limit. Their countdowns go through Celery's
    native delayed delivery, which needs a topic exchange.
    """
    name = settings.queue_name
    quorum = settings.queue_type == "quorum"
    kind: dict[str, Any] = (
        {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once"} if quorum else {}
    )
    overflow: dict[str, Any] = {"x-overflow": "reject-publish"} if quorum else {}
    dlx = Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True)
    work = Queue(
        name,
        Exchange(name, type="topic" if quorum else "direct", durable=True),
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": dead_letter_queue_name(name),
            **kind,
            **overflow,
            **({"x-delivery-limit": DELIVERY_LIMIT} if quorum else {}),
        },
    )
    dead = Queue(
        dead_letter_queue_name(name),
        dlx,
        routing_key=dead_letter_queue_name(name),
        durable=True,
        queue_arguments={"x-queue-type": "quorum"} if quorum else None,
    )
    return (work, dead)


def build(settings: Settings) -> dict[str, Any]:
    """Lowercase Celery settings for ``settings``."""
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # The database is the record; messages are "go" signals (DESIGN.md).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue_name,
        "task_default_exchange": settings.queue_name,
        "task_default_exchange_type": "topic" if settings.queue_type == "quorum" else "direct",
        "task_default_routing_key": settings.queue_name,
        "task_queues": make_queues(settings),
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "broker_connection_retry_on_startup": True,
        "result_expires": 3600,
        "result_extended": False,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }
    if settings.embedded_broker:
        # kombu's virtual transports poll every second by default: 1 s per hop.
        conf["broker_transport_options"] = {"polling_interval": 0.01}
        conf["task_queues"] = (Queue(settings.queue_name),)
    else:
        conf["broker_transport_options"] = {"confirm_publish": True}
    if settings.worker_concurrency:
        conf["worker_concurrency"] = settings.worker_concurrency
    return conf


globals().update(build(Settings.from_env()))

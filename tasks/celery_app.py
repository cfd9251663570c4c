"""The Celery app: ``celery -A tasks.celery_app worker`` (or ``canvasflow worker``)."""

from __future__ import annotations

import threading

from celery import Celery

import celeryconfig
from settings import Settings

from . import runtime

celery_app = Celery("canvasflow", include=["tasks.node", "tasks.heartbeat"])
app = celery_app  # `celery -A tasks.celery_app` looks for `app` or `celery`


def configure(settings: Settings) -> Celery:
    """Point the app at ``settings`` (broker, backend, database).

    Reconfiguring an app that already connected (tests switch between the embedded and
    the RabbitMQ mode) drops its cached connection pools and result backend first.
    """
    previous = runtime.current()
    runtime.set_settings(settings)
    if previous is not None and (
        previous.broker_url,
        previous.result_backend,
        previous.queue_name,
    ) != (settings.broker_url, settings.result_backend, settings.queue_name):
        celery_app._after_fork()  # forgets the connection and producer pools
        celery_app._backend_cache = None
        celery_app._local = threading.local()
        celery_app.__dict__.pop("amqp", None)  # its queue map was built from the old task_queues
    celery_app.conf.update(celeryconfig.build(settings))
    return celery_app


def make_celery(settings: Settings | None = None) -> Celery:
    """The configured app for ``settings`` (the API and the CLI use this)."""
    return configure(settings or runtime.settings())


configure(runtime.settings())

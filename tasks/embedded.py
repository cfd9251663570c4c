"""The embedded default: worker and ticker as threads of the current process.

kombu's in-memory broker lives inside one process, so the API, the worker and the ticker
of ``canvasflow dev`` (and ``canvasflow run`` without servers) share it here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from settings import Settings

from . import heartbeat
from .celery_app import configure
from .ticker import Ticker

log = logging.getLogger(__name__)


class EmbeddedEngine:
    """Start with :meth:`start`, stop with :meth:`stop`; usable as a context manager."""

    def __init__(self, settings: Settings, concurrency: int = 8, loglevel: str = "WARNING") -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.app = configure(settings)
        self.worker: Any = None
        self.ticker = Ticker(settings, self.app)
        from .cron import install

        install(self.ticker, beat=False)  # cron triggers fire in dev mode too
        heartbeat.install(self.ticker)  # re-queue the steps of workers that stopped beating
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> EmbeddedEngine:
        from celery.worker import state as worker_state

        import tasks.node  # noqa: F401 - register the tasks in this process

        worker_state.should_terminate = None
        self._stop.clear()
        app = self.app
        app.set_current()
        app.set_default()
        self.worker = app.WorkController(
            app=app,
            concurrency=self.concurrency,
            pool="threads",
            loglevel=self.loglevel,
            hostname=f"embedded-{threading.get_ident()}@canvasflow",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            queues=[self.settings.queue_name],
        )
        t = threading.Thread(target=self.worker.start, name="canvasflow-worker", daemon=True)
        t.start()
        self._threads.append(t)
        self._threads.append(heartbeat.start_embedded(self))  # this worker's liveness row
        ticker = threading.Thread(
            target=self.ticker.run_forever,
            args=(self._stop,),
            name="canvasflow-ticker",
            daemon=True,
        )
        ticker.start()
        self._threads.append(ticker)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        from celery.worker import state as worker_state

        self._stop.set()
        if self.worker is not None:
            worker_state.should_terminate = 0
            try:
                self.worker.stop(in_sighandler=False)
            except Exception:  # pragma: no cover - best effort on shutdown
                log.debug("worker stop raised", exc_info=True)
        for t in self._threads:
            t.join(timeout)
        worker_state.should_terminate = None
        self._threads.clear()

    def __enter__(self) -> EmbeddedEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

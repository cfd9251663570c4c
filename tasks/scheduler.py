"""A Celery beat scheduler that runs the ticker (repairs, delays, cron) on every beat tick.

``celery -A tasks.celery_app beat -S tasks.scheduler:CanvasflowScheduler`` (what
``canvasflow beat`` runs). Beat's own periodic-task table stays empty: cron triggers live
in the database and are read each tick, so changes apply without a restart.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import Scheduler

from . import heartbeat, runtime
from .ticker import Ticker

log = logging.getLogger(__name__)


class CanvasflowScheduler(Scheduler):
    """Beat scheduler whose tick is the Canvasflow ticker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ticker = Ticker(runtime.settings(), self.app)
        heartbeat.install(self.ticker)  # re-queue the steps of workers that stopped beating
        try:
            from .cron import install as install_cron
        except ImportError:  # cron triggers not installed in this build
            pass
        else:
            install_cron(self.ticker, beat=True)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            self.ticker.tick()
        except Exception:
            log.exception("canvasflow tick failed")
        super().tick(*args, **kwargs)
        return runtime.settings().tick_seconds

"""The /api blueprints, one module each, each exposing ``bp``.

A module listed here that does not exist yet is skipped, so blueprints written in
parallel plug in by creating ``app/api/<name>.py``; any other import error surfaces.
"""

from __future__ import annotations

import importlib
import logging

from flask import Flask

BLUEPRINT_MODULES = [
    "health",
    "docs",
    "workflows",
    "executions",
    "plan",
    "triggers",
    "webhooks",
    "dead_letters",
    "events",
    "queue",
    "scheduler",
    "observability",
]

log = logging.getLogger("canvasflow.api")


def register_blueprints(app: Flask) -> list[str]:
    """Register the ``bp`` of every existing module in BLUEPRINT_MODULES; return their names."""
    registered = []
    for name in BLUEPRINT_MODULES:
        module_name = f"{__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            log.debug("blueprint module %s not present; skipped", module_name)
            continue
        app.register_blueprint(module.bp)
        registered.append(name)
    return registered

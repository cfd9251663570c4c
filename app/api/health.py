"""GET /api/health: can this process reach its database, broker and result backend?

Plain JSON on purpose (not problem+json, even when 503): load balancers and humans
read the same shape either way. Checks run in parallel with short timeouts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, jsonify
from pydantic import BaseModel
from sqlalchemy import text

import models
from settings import Settings

from ..db import get_settings
from ..openapi import responses, spec

bp = Blueprint("health", __name__)
log = logging.getLogger("canvasflow.api")

TIMEOUT_SECONDS = 2.0
EMBEDDED = "ok (embedded)"
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="canvasflow-health")


class HealthChecks(BaseModel):
    """One outcome per dependency."""

    database: str
    broker: str
    result_backend: str


class WorkerOut(BaseModel):
    """A worker process and whether it heartbeated within the timeout."""

    name: str
    last_seen: str
    alive: bool


class Health(BaseModel):
    """``status`` is ``ok`` or ``unavailable``; each check is ``ok...`` or ``unavailable: ...``."""

    status: str
    checks: HealthChecks
    workers: list[WorkerOut] = []


def check_database(settings: Settings) -> str:
    """``SELECT 1`` through the app's engine."""
    with models.get_engine(settings.effective_database_url).connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


def check_broker(settings: Settings) -> str:
    """Open (and close) one connection to the broker."""
    if settings.embedded_broker:
        return EMBEDDED
    from kombu import Connection

    with Connection(settings.broker_url, connect_timeout=TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_SECONDS
        )
    return "ok"


def check_result_backend(settings: Settings) -> str:
    """Ping Redis; the in-memory backend needs nothing; a database backend gets ``SELECT 1``."""
    url = settings.result_backend
    if url.startswith("cache+memory://"):
        return EMBEDDED
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    if url.startswith("db+"):
        with models.get_engine(url.removeprefix("db+")).connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    if url.startswith("rpc://"):
        return check_broker(settings)
    return "ok (not checked)"


CHECKS: dict[str, Callable[[Settings], str]] = {
    "database": check_database,
    "broker": check_broker,
    "result_backend": check_result_backend,
}


def run_checks(settings: Settings) -> dict[str, str]:
    """Every check's outcome; failures read ``unavailable: <reason>`` without secrets."""
    futures = {name: _pool.submit(check, settings) for name, check in CHECKS.items()}
    results = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=TIMEOUT_SECONDS + 1)
        except FutureTimeout:
            results[name] = "unavailable: timed out"
        except (
            Exception
        ) as exc:  # any failure is "down"; the URL (with its password) stays in the log
            log.warning("health check %s failed", name, exc_info=exc)
            results[name] = f"unavailable: {type(exc).__name__}"
    return results


def live_workers() -> list[dict[str, object]]:
    """Workers from their heartbeat rows: ``{name, last_seen, alive}`` (none if the DB is down)."""
    try:
        from tasks.heartbeat import workers

        return [
            {"name": w["name"], "last_seen": w["last_seen"], "alive": w["alive"]}
            for w in workers(get_settings())
        ]
    except Exception:  # the database check already reports why
        log.debug("could not read worker heartbeats", exc_info=True)
        return []


@bp.get("/api/health")
@spec.validate(
    resp=responses(HTTP_200=Health, HTTP_503=(Health, "a dependency is down")),
    tags=["health"],
    security={},
    skip_validation=True,
)
def health():
    """Health of the database, broker and result backend."""
    checks = run_checks(get_settings())
    up = all(value.startswith("ok") for value in checks.values())
    response = jsonify(
        {
            "status": "ok" if up else "unavailable",
            "checks": checks,
            "workers": live_workers() if checks["database"].startswith("ok") else [],
        }
    )
    response.status_code = 200 if up else 503
    response.headers["Cache-Control"] = "no-store"
    return response

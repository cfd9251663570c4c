"""Is a real PostgreSQL / RabbitMQ / Redis reachable? Skip locally, fail in CI.

Each ``require_*()`` returns the service URL when it answers. When it does not, the
test is skipped, unless ``CANVASFLOW_REQUIRE_SERVICES=1`` (CI), where a missing service
is a failure that says what to start. URLs can be overridden with
``CANVASFLOW_TEST_POSTGRES_URL``, ``CANVASFLOW_TEST_RABBITMQ_URL`` and
``CANVASFLOW_TEST_REDIS_URL``.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_URL = "redis://127.0.0.1:6379/0"
TIMEOUT_SECONDS = 3


def services_required() -> bool:
    """True in CI: a missing service fails instead of skipping."""
    return os.environ.get("CANVASFLOW_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def _missing(service: str, url: str, error: str) -> None:
    message = f"{service} is not reachable at {url} ({error})"
    if services_required():
        pytest.fail(f"{message}; CANVASFLOW_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(message)


@cache
def _probe_postgres(url: str) -> str | None:
    import psycopg

    try:
        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn, connect_timeout=TIMEOUT_SECONDS) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


@cache
def _probe_rabbitmq(url: str) -> str | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=TIMEOUT_SECONDS)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


@cache
def _probe_redis(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def require_postgres() -> str:
    """The SQLAlchemy URL of the test PostgreSQL (database ``test``), or skip/fail."""
    url = os.environ.get("CANVASFLOW_TEST_POSTGRES_URL") or POSTGRES_URL
    error = _probe_postgres(url)
    if error:
        _missing("PostgreSQL", url, error)
    return url


def require_rabbitmq() -> str:
    """The AMQP URL of the test RabbitMQ, or skip/fail."""
    url = os.environ.get("CANVASFLOW_TEST_RABBITMQ_URL") or RABBITMQ_URL
    error = _probe_rabbitmq(url)
    if error:
        _missing("RabbitMQ", url, error)
    return url


def require_redis() -> str:
    """The URL of the test Redis, or skip/fail."""
    url = os.environ.get("CANVASFLOW_TEST_REDIS_URL") or REDIS_URL
    error = _probe_redis(url)
    if error:
        _missing("Redis", url, error)
    return url


def shared_dir() -> Path:
    """The shared/ folder beside the repository (spec, reference), or CANVASFLOW_SHARED_DIR."""
    configured = os.environ.get("CANVASFLOW_SHARED_DIR")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[1]
    beside = repo.parent / "shared"
    if beside.is_dir():
        return beside
    # A clone elsewhere (a temporary CI checkout): shared/ beside the repository it came from.
    import subprocess

    try:
        origin = subprocess.run(
            ["git", "-C", str(repo), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and Path(origin).is_dir() and (Path(origin).resolve().parent / "shared").is_dir():
        return Path(origin).resolve().parent / "shared"
    return beside

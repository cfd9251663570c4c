"""Fault tests: private PostgreSQL and RabbitMQ instances, and the figures they report.

Each scenario appends a line of figures to :data:`FIGURES`; they are printed in the
terminal summary (and with ``-s`` as they happen).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import REDIS_URL, _probe_redis, services_required
from tests.support.private_services import (
    PrivatePostgres,
    PrivateRabbitMQ,
    Unavailable,
    start_private_postgres,
    start_private_rabbitmq,
)
from tests.support.upstream import Upstream, start_upstream

FIGURES: list[str] = []


def report(line: str) -> None:
    """Record (and print) one line of fault figures."""
    FIGURES.append(line)
    print(f"\n[faults] {line}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("fault figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"cannot start a private {what}: {exc}"
    if services_required():
        pytest.fail(f"{message}; CANVASFLOW_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this module's own, free to stop and start."""
    try:
        pg = start_private_postgres()
    except Unavailable as exc:
        _unavailable("PostgreSQL", exc)
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="module")
def private_mq() -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node of this module's own, free to restart."""
    try:
        mq = start_private_rabbitmq()
    except Unavailable as exc:
        _unavailable("RabbitMQ", exc)
    try:
        yield mq
    finally:
        mq.destroy()


@pytest.fixture(scope="module")
def result_backend() -> str:
    """Redis when one answers (keys are per task id: nothing shared is disturbed), else rpc://.

    With rpc:// joins use the database counter instead of chords; both are supported.
    """
    import os

    url = os.environ.get("CANVASFLOW_TEST_REDIS_URL") or REDIS_URL
    return url if _probe_redis(url) is None else "rpc://"


@pytest.fixture(scope="module")
def fault_upstream() -> Iterator[Upstream]:
    up = start_upstream()
    # Killed workers cut their requests short: no tracebacks for those in the output.
    up.server.handle_error = lambda request, client_address: None
    yield up
    up.server.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _restore_celery_app() -> Iterator[None]:
    """The scenarios point the process's Celery app at the private broker; point it back."""
    from tasks import runtime
    from tasks.celery_app import configure

    previous = runtime.current()
    yield
    if previous is not None:
        configure(previous)

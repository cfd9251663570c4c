"""Engine fixtures: the same tests run on the embedded default and on RabbitMQ + PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import require_postgres, require_rabbitmq, require_redis
from tests.support.harness import Harness, drop_pg_database, embedded_harness, rabbitmq_harness
from tests.support.upstream import Upstream, start_upstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.server.shutdown()


@pytest.fixture(scope="session", params=["embedded", "embedded-unbatched", "rabbitmq"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """A running engine: in-process (SQLite + memory broker) or real worker and beat processes.

    ``embedded-unbatched`` gives every node a task of its own (CANVASFLOW_BATCH_NODES=1):
    the same results must come out of the per-node path as out of batches.
    """
    tmp = tmp_path_factory.mktemp(f"engine-{request.param}")
    if request.param.startswith("embedded"):
        batch = 1 if request.param == "embedded-unbatched" else 25
        h = embedded_harness(tmp, short_delay_seconds=2, batch_nodes=batch)
        yield h
        h.stop()
        return
    pg = require_postgres()
    amqp = require_rabbitmq()
    redis_url = require_redis()
    h = rabbitmq_harness(tmp, pg, amqp, redis_url, short_delay_seconds=2)
    try:
        yield h
    finally:
        h.stop()
        drop_pg_database(pg, h.settings.database_url)

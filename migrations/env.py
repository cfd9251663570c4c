"""Alembic environment: models.Base.metadata and Settings, not Flask."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

import models
from models.db import get_engine
from settings import Settings

config = context.config
target_metadata = models.Base.metadata


def _url() -> str:
    return (
        config.attributes.get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or Settings.from_env().effective_database_url
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine(_url())
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


def _run(connection: object) -> None:
    # render_as_batch: SQLite cannot ALTER most constraints; batch mode copies the table.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
_ = pool

"""Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

import migrations
import models
from tests.services import require_postgres


def schema_diff(url: str) -> list:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, models.Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'empty' / 'canvasflow.db'}"
    yield url
    models.get_engine(url).dispose()


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    admin = require_postgres()
    name = f"canvasflow_migrate_{secrets.token_hex(4)}"
    libpq = admin.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        models.get_engine(url).dispose()
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    return request.getfixturevalue(name)


def test_upgrade_from_empty_creates_every_table(empty_url):
    migrations.upgrade(empty_url)
    expected = set(models.Base.metadata.tables) | {"alembic_version"}
    assert table_names(empty_url) == expected


def test_migrated_schema_matches_the_models(empty_url):
    migrations.upgrade(empty_url)
    assert schema_diff(empty_url) == []


def test_downgrade_to_base_and_back(empty_url):
    migrations.upgrade(empty_url)
    cfg = migrations.alembic_config(empty_url)
    command.downgrade(cfg, "base")
    assert table_names(empty_url) <= {"alembic_version"}
    migrations.upgrade(empty_url)
    assert schema_diff(empty_url) == []


def test_upgrade_is_idempotent(empty_url):
    migrations.upgrade(empty_url)
    migrations.upgrade(empty_url)
    assert schema_diff(empty_url) == []

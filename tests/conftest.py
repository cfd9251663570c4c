"""Shared fixtures: settings per backend, the Flask app and client, users with keys.

``settings`` runs a test on both backends: a migrated SQLite file and a real
PostgreSQL database (created once per session, emptied before each test). PostgreSQL
tests skip when no server answers, and fail under ``CANVASFLOW_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql

import migrations
import models
from app import create_app
from app.auth import create_user
from settings import Settings
from tests.services import require_postgres

TINY_DAG: dict[str, Any] = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
    "edges": [{"source": "start", "target": "end"}],
}


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated by Alembic; each test gets a copy (migrating is slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "canvasflow.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    models.get_engine(url).dispose()  # checkpoints the WAL into the file we copy
    return path


@pytest.fixture
def settings_sqlite(tmp_path: Path, sqlite_template: Path) -> Iterator[Settings]:
    """The embedded default: a migrated SQLite file in a fresh data dir."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(sqlite_template, data_dir / "canvasflow.db")
    settings = Settings(data_dir=data_dir)
    yield settings
    models.get_engine(settings.effective_database_url).dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    admin_url = require_postgres()
    name = f"canvasflow_test_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        migrations.upgrade(url)
        yield url
    finally:
        models.get_engine(url).dispose()
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def truncate_all(url: str) -> None:
    """Empty every Canvasflow table (Alembic's version table stays)."""
    tables = sql.SQL(", ").join(sql.Identifier(t.name) for t in models.Base.metadata.sorted_tables)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE TABLE {} RESTART IDENTITY CASCADE").format(tables))


@pytest.fixture
def settings_pg(postgres_url: str, tmp_path: Path) -> Settings:
    """The session's PostgreSQL database, emptied for this test."""
    truncate_all(postgres_url)
    return Settings(data_dir=tmp_path / "data", database_url=postgres_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Each test using it runs on SQLite and on PostgreSQL."""
    name = "settings_sqlite" if request.param == "sqlite" else "settings_pg"
    return request.getfixturevalue(name)


@pytest.fixture
def app(settings: Settings) -> Flask:
    flask_app = create_app(settings)
    flask_app.testing = True
    return flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_user(settings: Settings, name: str) -> str:
    """Create user ``name`` and return its plaintext API key."""
    with models.session_scope(settings.effective_database_url) as session:
        _, key = create_user(session, name)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def user_key(settings: Settings) -> str:
    return make_user(settings, "alice")


@pytest.fixture
def auth(user_key: str) -> dict[str, str]:
    """Headers authenticating as alice."""
    return bearer(user_key)


@pytest.fixture
def other_key(settings: Settings) -> str:
    return make_user(settings, "bob")


@pytest.fixture
def other_auth(other_key: str) -> dict[str, str]:
    """Headers authenticating as bob, who must never see alice's rows."""
    return bearer(other_key)


@pytest.fixture
def tiny_dag() -> dict[str, Any]:
    """The smallest valid DAG: start -> end."""
    import copy

    return copy.deepcopy(TINY_DAG)

"""The ``canvasflow`` command (CONTRACT.md section 3): db, user and api.

Engine commands (dev, worker, beat, run) are added from :mod:`app.cli_engine`.
Configuration comes from the environment through ``Settings.from_env()``.
"""

from __future__ import annotations

import logging
import sys

import click
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _embedded(settings: Settings) -> bool:
    return not settings.database_url


def _upgrade(settings: Settings, revision: str = "head") -> None:
    from migrations import upgrade

    if _embedded(settings):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)


def _database_error(exc: Exception) -> click.ClickException:
    return click.ClickException(
        f"cannot use the database ({type(exc).__name__}); "
        "is it running, and was 'canvasflow db upgrade' run?"
    )


@click.group()
@click.version_option(package_name="canvasflow", message="%(prog)s %(version)s")
def main() -> None:
    """Canvasflow: durable workflows on Celery."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    settings = _settings()
    try:
        _upgrade(settings, revision)
    except sa_exc.SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    click.echo(f"database at {revision}")


@main.group()
def user() -> None:
    """Users and their API keys."""


@user.command("create")
@click.argument("name")
def user_create(name: str) -> None:
    """Create user NAME; the last line printed is its API key (shown only once)."""
    from app.auth import create_user
    from engine.errors import Conflict
    from models import session_scope

    settings = _settings()
    try:
        if _embedded(settings):
            _upgrade(settings)  # the embedded default works without a separate step
        with session_scope(settings.effective_database_url) as session:
            created, key = create_user(session, name)
            user_id = created.id
    except Conflict as exc:
        raise click.ClickException(exc.detail) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    click.echo(f"created user {name} ({user_id}); its API key, shown only once:")
    click.echo(key)


@user.command("key")
@click.argument("name")
def user_key(name: str) -> None:
    """Issue another API key for existing user NAME; the last line printed is the key."""
    from app.auth import create_api_key
    from models import User, session_scope

    settings = _settings()
    try:
        with session_scope(settings.effective_database_url) as session:
            user_id = session.scalar(select(User.id).where(User.name == name))
            if user_id is None:
                raise click.ClickException(f"no user named {name!r}")
            key = create_api_key(session, user_id)
    except sa_exc.SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    click.echo(f"new API key for {name}, shown only once:")
    click.echo(key)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def api(host: str, port: int, threads: int) -> None:
    """Serve the HTTP API with waitress."""
    from waitress import serve

    from app import create_app

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step otherwise
    if _embedded(settings):
        try:
            _upgrade(settings)
        except sa_exc.SQLAlchemyError as exc:
            raise _database_error(exc) from exc
    flask_app = create_app(settings)
    click.echo(f"Canvasflow API on http://{host}:{port}/api (docs: http://{host}:{port}/api/docs)")
    sys.stdout.flush()
    # Waitress refuses bodies far past the limit itself; up to there Flask answers 413
    # as problem+json.
    serve(
        flask_app,
        host=host,
        port=port,
        threads=threads,
        ident="canvasflow",
        max_request_body_size=4 * settings.max_body_bytes,
    )


try:
    from app.cli_engine import register
except ImportError:
    pass
else:
    register(main)

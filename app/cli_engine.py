"""Engine commands of the CLI: dev, worker, beat and run (CONTRACT.md section 3)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from settings import Settings


def register(main: click.Group) -> None:
    main.add_command(dev)
    main.add_command(worker)
    main.add_command(beat)
    main.add_command(run)
    main.add_command(flower)


def _prepare_db(settings: Settings) -> None:
    from migrations import upgrade

    upgrade(settings.effective_database_url)


def _key_for(settings: Settings, name: str) -> tuple[str, str]:
    """A user named ``name`` (created if missing) and a fresh API key for it."""
    from sqlalchemy import select

    from app.auth import create_api_key, create_user
    from models import User, session_scope

    with session_scope(settings.effective_database_url) as session:
        user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
        if user is None:
            user, key = create_user(session, name)
        else:
            key = create_api_key(session, user.id)
        return user.id, key


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--concurrency", default=8, show_default=True, type=int, help="worker threads")
def dev(host: str, port: int, concurrency: int) -> None:
    """API, web admin, worker and beat in one process on the embedded default."""
    import logging

    from waitress import serve

    from app import create_app
    from tasks.embedded import EmbeddedEngine

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()
    if not settings.action_allow_private:
        settings = settings.with_(action_allow_private=True)
    _prepare_db(settings)
    _, key = _key_for(settings, "dev")
    engine = EmbeddedEngine(settings, concurrency=concurrency).start()
    flask_app = create_app(settings)
    url = f"http://{host}:{port}"
    click.echo(f"Canvasflow dev server on the embedded default ({settings.effective_database_url})")
    click.echo(f"  API:       {url}/api   (docs: {url}/api/docs)")
    click.echo(f"  Admin:     {url}/")
    click.echo(f"  API key:   {key}")
    click.echo(f"  Try: curl -H 'Authorization: Bearer {key}' {url}/api/workflows")
    try:
        serve(flask_app, host=host, port=port, threads=16, ident="canvasflow")
    finally:
        engine.stop()


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--concurrency", "-c", type=int, default=None)
@click.option("--loglevel", "-l", default="INFO")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, loglevel: str) -> None:
    """A Celery worker on CANVASFLOW_BROKER_URL (extra arguments go to `celery worker`)."""
    from tasks.celery_app import configure

    settings = Settings.from_env()
    if settings.embedded_broker:
        raise click.ClickException(
            "`canvasflow worker` needs CANVASFLOW_BROKER_URL (RabbitMQ); "
            "on the embedded default `canvasflow dev` runs the worker in-process."
        )
    app = configure(settings)
    from tasks.queues import queue_mismatch

    problem = queue_mismatch(app, settings)
    if problem:
        raise click.ClickException(problem)
    argv = ["worker", f"--loglevel={loglevel}", "-Q", settings.queue_name, "-E"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv + list(ctx.args))


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--loglevel", "-l", default="INFO")
@click.pass_context
def beat(ctx: click.Context, loglevel: str) -> None:
    """Celery beat with the Canvasflow scheduler: cron triggers, delays and repairs."""
    from tasks.celery_app import configure

    settings = Settings.from_env()
    if settings.embedded_broker:
        raise click.ClickException(
            "`canvasflow beat` needs CANVASFLOW_BROKER_URL; `canvasflow dev` runs it in-process."
        )
    app = configure(settings)
    app.start(
        [
            "beat",
            f"--loglevel={loglevel}",
            "-S",
            "tasks.scheduler:CanvasflowScheduler",
            f"--max-interval={max(1, math.ceil(settings.tick_seconds))}",
        ]
        + list(ctx.args)
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--port", default=5555, show_default=True, type=int)
@click.option("--url-prefix", default="flower", show_default=True)
@click.pass_context
def flower(ctx: click.Context, port: int, url_prefix: str) -> None:
    """Flower, Celery's worker monitor, on the same broker (not for the embedded default)."""
    from tasks.celery_app import configure

    settings = Settings.from_env()
    if settings.embedded_broker:
        raise click.ClickException(
            "Flower needs CANVASFLOW_BROKER_URL; on the embedded default the web admin is the monitor."
        )
    app = configure(settings)
    app.start(["flower", f"--port={port}", f"--url_prefix={url_prefix}"] + list(ctx.args))


def _load_file(path: Path) -> Any:
    from engine.definitions import parse_yaml

    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise click.ClickException(f"{path}: malformed JSON: {exc}") from exc
    return parse_yaml(text)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "input_json", default=None, help="execution input as JSON")
@click.option(
    "--wait/--no-wait", default=False, help="show live progress, print the output, exit 0/1"
)
@click.option(
    "--name", default=None, help="workflow name (default: the document's name or the file name)"
)
@click.option("--user", "user_name", default="cli", show_default=True, help="owner of the workflow")
@click.option("--timeout", default=3600.0, show_default=True, help="seconds to wait at most")
def run(
    file: Path, input_json: str | None, wait: bool, name: str | None, user_name: str, timeout: float
) -> None:
    """Create or update the workflow in FILE and execute it."""
    from engine.errors import CanvasflowError, InvalidWorkflow

    settings = Settings.from_env()
    try:
        payload = json.loads(input_json) if input_json else None
    except ValueError as exc:
        raise click.ClickException(f"--input is not valid JSON: {exc}") from exc
    try:
        document = _load_file(file)
        from engine.definitions import load_definition

        load_definition(document)
    except InvalidWorkflow as exc:
        lines = [f"{file}: invalid workflow ({len(exc.problems)} problem(s)):"]
        lines += [f"  {p.pointer or '/'}: {p.message}" for p in exc.problems]
        raise click.ClickException("\n".join(lines)) from exc
    if name is None:
        doc_name = (
            (document.get("document") or {}).get("name") if isinstance(document, dict) else None
        )
        name = doc_name or file.stem
    engine = None
    if settings.embedded_broker:
        from tasks.embedded import EmbeddedEngine

        if not settings.action_allow_private:
            settings = settings.with_(action_allow_private=True)
        _prepare_db(settings)
        engine = EmbeddedEngine(settings).start()
        wait = True  # the in-process worker dies with this command, so see it through
    try:
        code = _run(settings, document, name, user_name, payload, wait, timeout)
    except CanvasflowError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        if engine is not None:
            engine.stop()
    sys.exit(code)


def _upsert_workflow(
    settings: Settings, user_name: str, name: str, document: Any
) -> tuple[str, str, int]:
    from sqlalchemy import select

    from app.auth import create_user
    from app.jsonio import canonical_json
    from engine.definitions import detect_format
    from models import User, Workflow, WorkflowVersion, session_scope

    with session_scope(settings.effective_database_url) as s:
        user = s.execute(select(User).where(User.name == user_name)).scalar_one_or_none()
        if user is None:
            user, _ = create_user(s, user_name)
        wf = (
            s.execute(
                select(Workflow).where(
                    Workflow.user_id == user.id,
                    Workflow.name == name,
                    Workflow.deleted_at.is_(None),
                )
            )
            .scalars()
            .first()
        )
        fmt = detect_format(document)
        if wf is None:
            wf = Workflow(user_id=user.id, name=name, format=fmt, version=1)
            s.add(wf)
            s.flush()
            s.add(WorkflowVersion(workflow_id=wf.id, version=1, format=fmt, definition=document))
        else:
            current = s.execute(
                select(WorkflowVersion.definition).where(
                    WorkflowVersion.workflow_id == wf.id, WorkflowVersion.version == wf.version
                )
            ).scalar_one()
            if canonical_json(current) != canonical_json(document):
                wf.version += 1
                wf.format = fmt
                s.add(
                    WorkflowVersion(
                        workflow_id=wf.id, version=wf.version, format=fmt, definition=document
                    )
                )
        return user.id, wf.id, wf.version


def _run(
    settings: Settings,
    document: Any,
    name: str,
    user_name: str,
    payload: Any,
    wait: bool,
    timeout: float,
) -> int:
    from tasks.celery_app import configure
    from tasks.service import start_execution

    app = configure(settings)
    user_id, workflow_id, version = _upsert_workflow(settings, user_name, name, document)
    execution, _ = start_execution(
        settings, app, user_id=user_id, workflow_id=workflow_id, input=payload
    )
    if not wait:
        click.echo(
            json.dumps(
                {"execution_id": execution.id, "workflow_id": workflow_id, "version": version}
            )
        )
        return 0
    from .progress import follow

    return follow(settings, execution.id, timeout)

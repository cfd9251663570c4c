"""Starting executions: shared by the API, webhooks, cron, the CLI and sub-workflows.

The rows are committed before anything is published; a crash in between leaves a
pending start step that the ticker republishes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import Celery

from engine import runs
from engine.errors import NotFound
from models import Execution, Workflow, session_scope
from settings import Settings

from .publish import publish_node, publish_region


def start_execution(
    settings: Settings,
    app: Celery,
    *,
    user_id: str,
    workflow_id: str,
    input: Any = None,
    idempotency_key: str | None = None,
    trigger_id: str | None = None,
    scheduled_for: datetime | None = None,
    version: int | None = None,
    parent_execution_id: str | None = None,
    parent_node_id: str | None = None,
) -> tuple[Execution, bool]:
    """Create (or find, by idempotency key) an execution and publish its first canvas."""
    url = settings.effective_database_url
    with session_scope(url) as session:
        wf = session.get(Workflow, workflow_id)
        if wf is None or wf.user_id != user_id or wf.deleted_at is not None:
            raise NotFound(f"workflow {workflow_id} not found")
        started = runs.create_execution(
            session,
            user_id=user_id,
            workflow_id=workflow_id,
            version=version or wf.version,
            input=input,
            chords=settings.native_chords,
            idempotency_key=idempotency_key,
            trigger_id=trigger_id,
            scheduled_for=scheduled_for,
            max_concurrency=wf.max_concurrency,
            parent_execution_id=parent_execution_id,
            parent_node_id=parent_node_id,
        )
        execution = started.execution
        plan = runs.load_compiled(
            session, workflow_id, execution.workflow_version, settings.native_chords
        ).plan
    for entry in started.publish:
        publish_region(app, plan, execution.id, entry)
    return execution, started.created


def resume_execution(settings: Settings, app: Celery, execution_id: str) -> list[str]:
    """Retry a failed execution from its failed steps (POST /api/executions/:id/retry)."""
    with session_scope(settings.effective_database_url) as session:
        nodes = runs.resume_execution(session, execution_id, chords=settings.native_chords)
    for node_id in nodes:
        publish_node(app, execution_id, node_id)
    return nodes

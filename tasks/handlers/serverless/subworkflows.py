"""``run: workflow``: start a child execution of the same user and, if asked, wait for it.

Waiting polls the child's row every ``POLL_SECONDS`` while holding the worker thread;
cancelling the parent cancels the child.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from engine import runs
from engine.serverless import Cancelled, WorkflowError
from engine.states import ExecutionStatus
from models import Execution, Workflow, WorkflowVersion, session_scope
from settings import Settings

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25


def find_workflow(
    url: str, user_id: str, namespace: str, name: str, version: str
) -> tuple[str, int]:
    """The user's serverless workflow (id, version number) whose document matches, newest first."""
    with session_scope(url) as session:
        rows = session.execute(
            select(Workflow.id, WorkflowVersion.version, WorkflowVersion.definition)
            .join(WorkflowVersion, WorkflowVersion.workflow_id == Workflow.id)
            .where(
                Workflow.user_id == user_id,
                Workflow.deleted_at.is_(None),
                WorkflowVersion.format == "serverless",
            )
            .order_by(WorkflowVersion.created_at.desc(), WorkflowVersion.version.desc())
        ).all()
    for row in rows:
        doc = (row.definition or {}).get("document") or {}
        if (
            doc.get("name") == name
            and (not namespace or doc.get("namespace") == namespace)
            and (version in ("", "latest") or str(doc.get("version")) == version)
        ):
            return row.id, row.version
    raise WorkflowError.standard(
        "configuration", f"no workflow {namespace}/{name}:{version} is defined for this user"
    )


def run_workflow(
    settings: Settings,
    *,
    user_id: str,
    parent_execution_id: str,
    parent_node_id: str,
    namespace: str,
    name: str,
    version: str,
    input: Any,
    wait: bool,
    cancelled: Callable[[], bool],
) -> Any:
    """Start the child execution and, if ``wait``, poll it to its end."""
    from tasks.celery_app import celery_app  # the worker's configured app
    from tasks.service import start_execution

    url = settings.effective_database_url
    workflow_id, number = find_workflow(url, user_id, namespace, name, version)
    child, _ = start_execution(
        settings,
        celery_app,
        user_id=user_id,
        workflow_id=workflow_id,
        input=input,
        version=number,
        parent_execution_id=parent_execution_id,
        parent_node_id=parent_node_id,
    )
    if not wait:
        return None
    while True:
        with session_scope(url) as session:
            row = session.execute(
                select(Execution.status, Execution.output, Execution.error).where(
                    Execution.id == child.id
                )
            ).one()
        if row.status == ExecutionStatus.SUCCEEDED.value:
            return row.output
        if row.status in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value):
            details = (row.error or {}).get("details") if isinstance(row.error, dict) else None
            if isinstance(details, dict) and "type" in details and "status" in details:
                raise WorkflowError.from_dict(details)
            raise WorkflowError.standard(
                "runtime", f"sub-workflow {name} (execution {child.id}) ended {row.status}"
            )
        if cancelled():
            with session_scope(url) as session:
                try:
                    runs.cancel_execution(session, child.id)
                except Exception:  # already finished: nothing to cancel
                    log.debug("child %s not cancelled", child.id, exc_info=True)
            raise Cancelled()
        time.sleep(POLL_SECONDS)

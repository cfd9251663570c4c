"""Publishing after commit: region canvases, per-node repair messages, revokes."""

from __future__ import annotations

import logging
import math

from celery import Celery

from engine.batching import region_canvas
from engine.compiler import RUN_NODE, Plan, to_signature
from engine.runs import Followups

from . import runtime

log = logging.getLogger(__name__)
WAKE_STEP = "canvasflow.wake_step"


def publish_region(app: Celery, plan: Plan, execution_id: str, entry: str) -> None:
    """Send the canvas of the region starting at ``entry``, pure nodes batched."""
    canvas = region_canvas(plan, entry, runtime.settings().batch_nodes)
    to_signature(canvas, execution_id, app=app).apply_async()


def publish_node(
    app: Celery,
    execution_id: str,
    node_id: str,
    *,
    takeover: bool = False,
    task_id: str | None = None,
) -> None:
    """Send one node on its own; it dispatches its successors itself (repair mode).

    A re-queue of a running step passes the ``task_id`` its CAS stamped on the row, which
    is what lets this message (and no stale duplicate) take the step over.
    """
    app.send_task(
        RUN_NODE,
        args=(execution_id, node_id),
        kwargs={"repair": True, "takeover": takeover},
        task_id=task_id,
    )


def publish_wake(app: Celery, execution_id: str, node_id: str, seconds: float) -> None:
    # Whole seconds: fractional countdowns break on quorum queues (DESIGN.md).
    app.send_task(WAKE_STEP, args=(execution_id, node_id), countdown=max(0, math.ceil(seconds)))


def revoke(app: Celery, task_ids: list[str]) -> None:
    if not task_ids:
        return
    try:
        app.control.revoke(task_ids)
    except Exception:  # revocation is best effort: the CAS already stops the step's effects
        log.warning("revoke failed for %d task(s)", len(task_ids), exc_info=True)


def publish_followups(app: Celery, plan: Plan, execution_id: str, follow: Followups | None) -> None:
    """Everything a committed transition asked for."""
    if follow is None:
        return
    for entry in follow.regions:
        publish_region(app, plan, execution_id, entry)
    for node_id in follow.repair:
        publish_node(app, execution_id, node_id)
    revoke(app, follow.revoke)

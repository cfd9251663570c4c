"""GET /api/workflows/:id/plan: the Celery canvases and database joins a run will use."""

from __future__ import annotations

import json

from flask import Blueprint, jsonify

from engine import runs
from engine.batching import region_canvas
from engine.compiler import to_signature
from models import Workflow

from ..auth import get_owned
from ..db import get_session, get_settings
from ..openapi import responses, spec

bp = Blueprint("plan", __name__)


@bp.get("/api/workflows/<workflow_id>/plan")
@spec.validate(resp=responses(401, 404), tags=["workflows"], skip_validation=True)
def get_plan(workflow_id: str):
    """The compiled plan of the current version: one canvas per region plus the counter joins."""
    session = get_session()
    workflow = get_owned(session, Workflow, workflow_id)
    settings = get_settings()
    compiled = runs.load_compiled(session, workflow.id, workflow.version, settings.native_chords)
    plan = compiled.plan.to_json()
    for region in plan["regions"]:
        # What is published: pure nodes share tasks (engine/batching.py) ...
        published = region_canvas(compiled.plan, region["entry"], settings.batch_nodes)
        region["published"] = published.to_json()
        region["tasks"] = _count_tasks(published.to_json())
        # ... and the Celery canvas itself, in Celery's own JSON form (subtask_type
        # chain/group/chord).
        sig = to_signature(published, "<execution_id>")
        region["celery"] = json.loads(json.dumps(sig))
    return jsonify(
        {
            "workflow_id": workflow.id,
            "version": workflow.version,
            "batch_nodes": settings.batch_nodes,
            **plan,
        }
    )


def _count_tasks(spec: dict) -> int:
    """How many task messages a region's canvas publishes."""
    if spec["type"] in ("task", "batch"):
        return 1
    if spec["type"] == "chord":
        return sum(_count_tasks(h) for h in spec["header"]) + 1
    return sum(_count_tasks(t) for t in spec["tasks"])

"""/api/workflows: create, read, version, update and soft-delete workflow definitions.

A workflow row holds the current ``version``; every definition it ever had stays in
``workflow_versions``, so executions keep the version they started with. Definitions
arrive as JSON (``{"name", "definition", ...}``) or as a raw YAML/JSON Serverless
Workflow document (``Content-Type: application/yaml``), and are validated by
``engine.definitions.load_definition`` before anything is stored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, jsonify, url_for
from pydantic import BaseModel, ValidationError
from sqlalchemy import select, update

from engine.definitions import detect_format, load_definition
from engine.errors import InvalidInput, InvalidWorkflow, NotFound, Problem
from models import Trigger, Workflow, WorkflowVersion, utcnow

from .. import audit
from ..auth import current_user_id, get_owned
from ..bodies import (
    body_kind,
    body_text,
    parse_json,
    parse_yaml_text,
    problems_from_validation_error,
    query_arg,
    require_object,
)
from ..db import get_session
from ..jsonio import canonical_json
from ..openapi import accepts_yaml, responses, spec
from ..pagination import PageQuery, page_args, paginate
from .workflow_schemas import (
    VersionOut,
    VersionPage,
    WorkflowCreate,
    WorkflowListQuery,
    WorkflowOut,
    WorkflowPage,
    WorkflowUpdate,
    YamlQuery,
)

bp = Blueprint("workflows", __name__)

TAGS = ["workflows"]
YAML_DOC = (
    "A Serverless Workflow 1.0 document (YAML or JSON) as the whole body; the name "
    "comes from document.name or ?name=, the text is kept as the version's source."
)


# -- serialization ---------------------------------------------------------------------------


def summary(workflow: Workflow) -> dict[str, Any]:
    """A workflow without its definition, as lists show it."""
    return {
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "format": workflow.format,
        "version": workflow.version,
        "max_concurrency": workflow.max_concurrency,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
    }


def version_summary(row: WorkflowVersion) -> dict[str, Any]:
    """A version without its definition, as lists show it."""
    return {
        "workflow_id": row.workflow_id,
        "version": row.version,
        "format": row.format,
        "created_at": row.created_at,
    }


def version_json(row: WorkflowVersion) -> dict[str, Any]:
    """A version with its definition and YAML source."""
    return {**version_summary(row), "definition": row.definition, "source": row.source}


def current_version(session: Any, workflow: Workflow) -> WorkflowVersion:
    """The WorkflowVersion row of the workflow's current version."""
    row = session.scalars(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == workflow.version
        )
    ).first()
    if row is None:  # written in the same transaction as the workflow, so never expected
        raise NotFound(f"Workflow {workflow.id} has no version {workflow.version}.")
    return row


def workflow_json(workflow: Workflow, definition: dict[str, Any]) -> dict[str, Any]:
    """A workflow with the given (current) definition."""
    return {**summary(workflow), "definition": definition}


# -- request bodies --------------------------------------------------------------------------


def _read_body() -> tuple[dict[str, Any], str | None, str]:
    """(fields, raw YAML source or None, pointer prefix of the definition in the body)."""
    if body_kind(allow_yaml=True) == "yaml":
        text = body_text()
        document = require_object(parse_yaml_text(text))
        return {"definition": document}, text, ""
    body = require_object(parse_json(body_text()))
    if "definition" not in body and detect_format(body) == "serverless":
        return {"definition": body}, None, ""  # a bare Serverless Workflow document as JSON
    return body, None, "/definition"


def _yaml_defaults(fields: dict[str, Any], creating: bool) -> dict[str, Any]:
    """Name (and description) of a bare document: ?name=, else its document.name."""
    meta = fields["definition"].get("document")
    meta = meta if isinstance(meta, dict) else {}
    name = query_arg("name")
    if name is None and creating and "name" in meta:
        name = meta["name"]
    if name is not None:
        fields["name"] = name
    summary_text = meta.get("summary") or meta.get("title")
    if creating and isinstance(summary_text, str):
        fields["description"] = summary_text[:10_000]
    return fields


def _definition_problems(definition: Any, prefix: str) -> list[Problem]:
    if not isinstance(definition, dict):
        return []
    try:
        load_definition(definition)
    except InvalidWorkflow as exc:
        return [dataclasses.replace(p, pointer=prefix + p.pointer) for p in exc.problems]
    return []


def _validated(
    model: type[BaseModel], fields: dict[str, Any], prefix: str, bare: bool
) -> BaseModel:
    """The request model, or one 422 listing every field problem and every definition problem."""
    problems: list[Problem] = []
    parsed = None
    try:
        parsed = model.model_validate(fields)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc)
        if bare:  # the body is the document: say where a missing name comes from
            problems = [
                Problem("", "a name is required: set document.name or pass ?name=")
                if p.pointer == "/name" and p.message == "field required"
                else p
                for p in problems
            ]
    if "definition" in fields and fields["definition"] is None:
        problems.append(Problem(prefix or "/definition", "must not be null"))
    if "name" in fields and fields["name"] is None:
        problems.append(Problem("/name", "must not be null"))
    definition_problems = _definition_problems(fields.get("definition"), prefix)
    if problems:
        raise InvalidInput(problems + definition_problems)
    if definition_problems:
        raise InvalidWorkflow(definition_problems)
    assert parsed is not None
    return parsed


# -- routes ----------------------------------------------------------------------------------


@bp.get("/api/workflows")
@spec.validate(
    query=WorkflowListQuery,
    resp=responses(400, 401, HTTP_200=WorkflowPage),
    tags=TAGS,
    skip_validation=True,
)
def list_workflows():
    """List your workflows, newest first."""
    limit, cursor = page_args()
    stmt = select(Workflow).where(
        Workflow.user_id == current_user_id(), Workflow.deleted_at.is_(None)
    )
    name = query_arg("name")
    if name is not None:
        stmt = stmt.where(Workflow.name == name)
    return jsonify(paginate(get_session(), stmt, Workflow, limit, cursor, summary))


@bp.post("/api/workflows")
@spec.validate(
    json=WorkflowCreate,
    query=YamlQuery,
    resp=responses(400, 401, 413, 415, HTTP_201=WorkflowOut),
    tags=TAGS,
    skip_validation=True,
)
@accepts_yaml(YAML_DOC)
def create_workflow():
    """Create a workflow; its definition becomes version 1."""
    fields, source, prefix = _read_body()
    bare = prefix == ""
    if bare:
        fields = _yaml_defaults(fields, creating=True)
    body = _validated(WorkflowCreate, fields, prefix, bare)
    assert isinstance(body, WorkflowCreate)
    session = get_session()
    user_id = current_user_id()
    fmt = detect_format(body.definition)
    workflow = Workflow(
        user_id=user_id,
        name=body.name,
        description=body.description,
        format=fmt,
        version=1,
        max_concurrency=body.max_concurrency,
    )
    session.add(workflow)
    session.flush()
    session.add(
        WorkflowVersion(
            workflow_id=workflow.id,
            version=1,
            format=fmt,
            definition=body.definition,
            source=source,
        )
    )
    audit.record(
        session,
        user_id,
        "workflow.create",
        "workflow",
        workflow.id,
        {"name": body.name, "version": 1, "format": fmt},
    )
    session.commit()
    response = jsonify(workflow_json(workflow, body.definition))
    response.status_code = 201
    response.headers["Location"] = url_for(".get_workflow", workflow_id=workflow.id)
    return response


@bp.get("/api/workflows/<workflow_id>")
@spec.validate(resp=responses(401, 404, HTTP_200=WorkflowOut), tags=TAGS, skip_validation=True)
def get_workflow(workflow_id: str):
    """A workflow with the definition of its current version."""
    session = get_session()
    workflow = get_owned(session, Workflow, workflow_id)
    return jsonify(workflow_json(workflow, current_version(session, workflow).definition))


@bp.put("/api/workflows/<workflow_id>")
@spec.validate(
    json=WorkflowUpdate,
    query=YamlQuery,
    resp=responses(400, 401, 404, 409, 413, 415, HTTP_200=WorkflowOut),
    tags=TAGS,
    skip_validation=True,
)
@accepts_yaml(YAML_DOC)
def update_workflow(workflow_id: str):
    """Change any of name, description, definition, max_concurrency.

    A changed definition becomes a new version; running executions keep theirs.
    """
    fields, source, prefix = _read_body()
    bare = prefix == ""
    if bare:
        fields = _yaml_defaults(fields, creating=False)
    body = _validated(WorkflowUpdate, fields, prefix, bare)
    assert isinstance(body, WorkflowUpdate)
    session = get_session()
    workflow = get_owned(session, Workflow, workflow_id, for_update=True)
    given = body.model_fields_set
    current = current_version(session, workflow)
    definition = current.definition
    changed: list[str] = []
    if "definition" in given and body.definition is not None:
        if canonical_json(body.definition) != canonical_json(current.definition):
            workflow.version += 1
            workflow.format = detect_format(body.definition)
            definition = body.definition
            session.add(
                WorkflowVersion(
                    workflow_id=workflow.id,
                    version=workflow.version,
                    format=workflow.format,
                    definition=definition,
                    source=source,
                )
            )
            changed.append("definition")
    for name in ("name", "description", "max_concurrency"):
        if name in given and getattr(body, name) != getattr(workflow, name):
            setattr(workflow, name, getattr(body, name))
            changed.append(name)
    if changed:
        workflow.updated_at = utcnow()
        audit.record(
            session,
            current_user_id(),
            "workflow.update",
            "workflow",
            workflow.id,
            {"changed": changed, "version": workflow.version},
        )
    session.commit()
    return jsonify(workflow_json(workflow, definition))


@bp.delete("/api/workflows/<workflow_id>")
@spec.validate(resp=responses(401, 404, HTTP_204=None), tags=TAGS, skip_validation=True)
def delete_workflow(workflow_id: str):
    """Delete a workflow (its executions stay readable; its triggers are disabled)."""
    session = get_session()
    workflow = get_owned(session, Workflow, workflow_id, for_update=True)
    workflow.deleted_at = utcnow()
    # A deleted workflow must not keep firing from cron or webhooks.
    session.execute(update(Trigger).where(Trigger.workflow_id == workflow.id).values(enabled=False))
    audit.record(
        session,
        current_user_id(),
        "workflow.delete",
        "workflow",
        workflow.id,
        {"name": workflow.name, "version": workflow.version},
    )
    session.commit()
    return "", 204


@bp.get("/api/workflows/<workflow_id>/versions")
@spec.validate(
    query=PageQuery,
    resp=responses(400, 401, 404, HTTP_200=VersionPage),
    tags=TAGS,
    skip_validation=True,
)
def list_versions(workflow_id: str):
    """Every version of a workflow, newest first."""
    session = get_session()
    workflow = get_owned(session, Workflow, workflow_id)
    limit, cursor = page_args()
    stmt = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
    return jsonify(paginate(session, stmt, WorkflowVersion, limit, cursor, version_summary))


@bp.get("/api/workflows/<workflow_id>/versions/<int:version>")
@spec.validate(resp=responses(401, 404, HTTP_200=VersionOut), tags=TAGS, skip_validation=True)
def get_version(workflow_id: str, version: int):
    """One version of a workflow, with its definition (and YAML source, if sent as YAML)."""
    session = get_session()
    workflow = get_owned(session, Workflow, workflow_id)
    row = session.scalars(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"Workflow {workflow_id} has no version {version}.")
    return jsonify(version_json(row))

"""Request and response bodies of /api/workflows, as pydantic models.

Views validate with them (through ``app.bodies``) and spectree documents them in the
OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..pagination import PageQuery


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be blank")
    return value


class WorkflowCreate(BaseModel):
    """Body of POST /api/workflows."""

    model_config = ConfigDict(strict=True)

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    definition: dict[str, Any] = Field(
        description="a DAG document or a Serverless Workflow document"
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=1_000_000, description="running executions at most; null = unlimited"
    )

    _name = field_validator("name")(_not_blank)


class WorkflowUpdate(BaseModel):
    """Body of PUT /api/workflows/{id}: any subset of the fields."""

    model_config = ConfigDict(strict=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    definition: dict[str, Any] | None = None
    max_concurrency: int | None = Field(None, ge=1, le=1_000_000)

    _name = field_validator("name")(_not_blank)


class WorkflowSummary(BaseModel):
    """A workflow as lists show it: everything but the definition."""

    id: str
    name: str
    description: str | None
    format: str = Field(description="dag or serverless")
    version: int
    max_concurrency: int | None
    created_at: datetime
    updated_at: datetime


class WorkflowOut(WorkflowSummary):
    """A workflow with the definition of its current version."""

    definition: dict[str, Any] = Field(description="the definition of the current version")


class WorkflowPage(BaseModel):
    """One page of workflows, newest first."""

    items: list[WorkflowSummary]
    next_cursor: str | None


class VersionSummary(BaseModel):
    """One version of a workflow, without its definition."""

    workflow_id: str
    version: int
    format: str
    created_at: datetime


class VersionOut(VersionSummary):
    """One version of a workflow with its definition."""

    definition: dict[str, Any]
    source: str | None = Field(description="the raw YAML text, when the version was sent as YAML")


class VersionPage(BaseModel):
    """One page of versions, newest first."""

    items: list[VersionSummary]
    next_cursor: str | None


class WorkflowListQuery(PageQuery):
    """Query of GET /api/workflows."""

    name: str | None = Field(None, description="only workflows with exactly this name")


class YamlQuery(BaseModel):
    """Query of POST/PUT with a YAML body."""

    name: str | None = Field(
        None, description="with a YAML body: the workflow name (default document.name)"
    )

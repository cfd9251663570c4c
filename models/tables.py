"""The Canvasflow record: every table, typed in SQLAlchemy 2.0 style.

Indexes follow the API's queries: lists are per user, newest first, by id cursor; the
engine reads steps by (execution_id, node_id) and the ticker by (status, wake_at/lease).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, IdColumn, new_id, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class ApiKey(Base):
    """A bearer key, stored as a SHA-256 hash; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="api_keys")


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (
        Index("ix_workflows_user_created", "user_id", "deleted_at", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(20), default="dag")  # dag | serverless
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Executions above this many running at once wait as `pending` (None = unlimited).
    max_concurrency: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Soft delete: the workflow disappears from the API, its executions stay readable.
    deleted_at: Mapped[datetime | None]


class WorkflowVersion(Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(20), default="dag")
    definition: Mapped[dict[str, Any]]
    # The raw YAML text when the definition was sent as YAML, kept for round-trips.
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Execution(Base):
    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "idempotency_key"),
        # One execution per cron occurrence, however many beats fire it (DESIGN.md).
        UniqueConstraint("trigger_id", "scheduled_for"),
        Index("ix_executions_user_created", "user_id", "created_at", "id"),
        Index("ix_executions_workflow_status", "workflow_id", "status"),
        Index("ix_executions_status", "status"),
    )

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    input: Mapped[Any | None]
    output: Mapped[Any | None]
    # The end node whose output became the execution output (first one reached wins).
    output_node: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    trigger_id: Mapped[str | None] = mapped_column(IdColumn())
    scheduled_for: Mapped[datetime | None]
    parent_execution_id: Mapped[str | None] = mapped_column(IdColumn())
    parent_node_id: Mapped[str | None] = mapped_column(String(500))
    # Atomic fan-in for completion: end nodes not yet terminal.
    ends_remaining: Mapped[int] = mapped_column(Integer, default=0)
    # The reply of a synchronous webhook, set by the first webhook_response node.
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StepExecution(Base):
    """One node of one execution: the row every task compares-and-sets."""

    __tablename__ = "step_executions"
    __table_args__ = (
        UniqueConstraint("execution_id", "node_id"),
        # Partial, and without `status`: a step that never waits nor holds a lease changes
        # no indexed column, so PostgreSQL updates it in place (HOT), with no index write.
        Index(
            "ix_step_executions_wake",
            "wake_at",
            postgresql_where=text("wake_at IS NOT NULL"),
            sqlite_where=text("wake_at IS NOT NULL"),
        ),
        Index(
            "ix_step_executions_lease",
            "lease_expires_at",
            postgresql_where=text("lease_expires_at IS NOT NULL"),
            sqlite_where=text("lease_expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(500))
    node_type: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Counter edges (between canvases) still to finish before this node may be published.
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    input: Mapped[Any | None]
    output: Mapped[Any | None]
    error: Mapped[dict[str, Any] | None]
    # Per-attempt history for the timeline: [{attempt, status, started_at, finished_at, error}].
    history: Mapped[list[Any] | None] = mapped_column(default=None)
    task_id: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(200))
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    wake_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Trigger(Base):
    __tablename__ = "triggers"
    __table_args__ = (
        Index("ix_triggers_user_created", "user_id", "created_at", "id"),
        Index("ix_triggers_type_enabled_next", "type", "enabled", "next_fire_at"),
    )

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[datetime | None]
    last_fired_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_user_created", "user_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(IdColumn(), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    node_id: Mapped[str] = mapped_column(String(500))
    error: Mapped[dict[str, Any] | None]
    message: Mapped[dict[str, Any] | None]
    queue: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="dead")  # dead | replayed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_user_created", "user_id", "created_at", "id"),
        Index("ix_audit_log_entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(IdColumn())
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LifecycleEvent(Base):
    """Execution-level events (created, started, cancelled, retried, finished...)."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (Index("ix_lifecycle_events_execution", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    node_id: Mapped[str | None] = mapped_column(String(500))
    event: Mapped[str] = mapped_column(String(50))
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Heartbeat(Base):
    """Liveness of workers and beat: one row per process, refreshed periodically."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # worker | beat
    info: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class CloudEvent(Base):
    """Events ingested by POST /api/events, consumed by Serverless Workflow `listen` tasks."""

    __tablename__ = "cloud_events"
    __table_args__ = (Index("ix_cloud_events_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(500))
    type: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

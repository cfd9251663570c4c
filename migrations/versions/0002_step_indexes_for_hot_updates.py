"""step indexes for in-place (HOT) updates

Partial indexes on wake_at and lease_expires_at without `status`, so a step moving from
pending to succeeded changes no indexed column; PostgreSQL then updates the row in place.
A lower fillfactor leaves room on each page for those in-place versions.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("step_executions") as batch_op:
        batch_op.drop_index("ix_step_executions_status_wake")
        batch_op.drop_index("ix_step_executions_status_lease")
        batch_op.create_index(
            "ix_step_executions_wake",
            ["wake_at"],
            postgresql_where=sa.text("wake_at IS NOT NULL"),
            sqlite_where=sa.text("wake_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_step_executions_lease",
            ["lease_expires_at"],
            postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
            sqlite_where=sa.text("lease_expires_at IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE step_executions SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE step_executions RESET (fillfactor)")
    with op.batch_alter_table("step_executions") as batch_op:
        batch_op.drop_index("ix_step_executions_lease")
        batch_op.drop_index("ix_step_executions_wake")
        batch_op.create_index("ix_step_executions_status_lease", ["status", "lease_expires_at"])
        batch_op.create_index("ix_step_executions_status_wake", ["status", "wake_at"])

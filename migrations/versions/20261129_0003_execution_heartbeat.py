"""execution heartbeat

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 03:25:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: existing rows need no rewrite. NULL on an in_progress execution means "no
    # worker holds it" (the reconciler runs it again at once).
    op.add_column('agentic_executions', sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
    # Executions running while this migration runs are held by workers of the previous release,
    # which do not beat. Give them the old reconciler's patience (the default job timeout,
    # 690 s, from their start) before they count as orphaned.
    op.execute(
        "UPDATE agentic_executions SET heartbeat_at = started_at + interval '690 seconds' "
        "WHERE status = 'in_progress'"
    )


def downgrade() -> None:
    op.drop_column('agentic_executions', 'heartbeat_at')

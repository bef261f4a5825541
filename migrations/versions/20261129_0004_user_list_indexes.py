"""indexes for a user's list filtered by agent or status

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 03:45:00.000000

"""
from collections.abc import Sequence

from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Measured at 1,000,000 rows: a user's list by agent went from 171 ms to 5 ms to count,
    # by status from 212 ms to 24 ms (bench/, scenario list).
    op.create_index('ix_agentic_executions_user_agent_started', 'agentic_executions', ['user_id', 'agent_id', 'started_at', 'id'], unique=False)
    op.create_index('ix_agentic_executions_user_status_started', 'agentic_executions', ['user_id', 'status', 'started_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_agentic_executions_user_status_started', table_name='agentic_executions')
    op.drop_index('ix_agentic_executions_user_agent_started', table_name='agentic_executions')

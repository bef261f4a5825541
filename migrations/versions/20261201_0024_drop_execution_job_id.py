"""drop agentic_executions.job_id (contract: no release writes or reads it any more)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 11:30:00.000000

The job id is derived from the execution's id (app/executions/queue.py job_id_for). The
release before this one stopped writing the column and no longer named it in any statement
(its mapping deferred with raiseload), so it keeps working while this one rolls out
(deploy/README.md, expand then contract; tests/test_rolling_deploy.py). The column had no index.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column('agentic_executions', 'job_id')


def downgrade() -> None:
    # Nullable, as it was: rows written meanwhile have none, and no code reads it.
    op.add_column(
        'agentic_executions',
        sa.Column('job_id', sa.String(length=200), nullable=True),
    )

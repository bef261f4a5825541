"""the execution definition's version an execution was submitted with

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 05:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: the previous release's INSERT (without the column) keeps working
    # during a rolling deploy, and its executions read as version null.
    op.add_column(
        'agentic_executions',
        sa.Column('definition_version', sa.String(length=100), nullable=True),
    )


def downgrade() -> None:
    op.drop_column('agentic_executions', 'definition_version')

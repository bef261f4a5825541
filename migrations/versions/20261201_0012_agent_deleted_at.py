"""when an agent was deleted (soft delete), shown as Enthusiast's `deleted_at`

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-01 04:20:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('agents', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('agents', 'deleted_at')

"""agentic_execution_schedules.idempotency_key and request_sha256

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 23:30:00.000000

Expand only: two nullable columns and a unique constraint the previous release never writes
(its schedules have no key, and NULLs are distinct).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0032'
down_revision: str | None = '0031'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'agentic_execution_schedules',
        sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    )
    op.add_column(
        'agentic_execution_schedules',
        sa.Column('request_sha256', sa.String(length=64), nullable=True),
    )
    op.create_unique_constraint(
        op.f('uq_agentic_execution_schedules_user_id_idempotency_key'),
        'agentic_execution_schedules',
        ['user_id', 'idempotency_key'],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f('uq_agentic_execution_schedules_user_id_idempotency_key'),
        'agentic_execution_schedules',
        type_='unique',
    )
    op.drop_column('agentic_execution_schedules', 'request_sha256')
    op.drop_column('agentic_execution_schedules', 'idempotency_key')

"""execution_steps: the journal of each execution's model responses and tool results, replayed
by the next attempt

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 09:00:00.000000

A new table only: the previous release never reads or writes it (expand).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'execution_steps',
        sa.Column('execution_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('args_hash', sa.String(length=64), nullable=False),
        sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('model', 'tool')", name=op.f('ck_execution_steps_kind')),
        sa.ForeignKeyConstraint(
            ['execution_id'],
            ['agentic_executions.id'],
            name=op.f('fk_execution_steps_execution_id_agentic_executions'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('execution_id', 'step', 'call_id', name=op.f('pk_execution_steps')),
    )


def downgrade() -> None:
    op.drop_table('execution_steps')

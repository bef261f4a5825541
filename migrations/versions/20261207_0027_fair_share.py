"""fair share: executions' priority and dispatch time, users' weight, the dispatcher's usage

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-07 19:15:00.000000

Expand only: new columns with defaults and partial indexes that hold only the executions
waiting for the dispatcher (app/executions/dispatch.py) and those released to the workers and
not yet claimed. The open executions of the previous release were all enqueued at insert:
they are marked dispatched, so this release's reconciler keeps finding them.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0027'
down_revision: str | None = '0025'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status = 'pending' AND dispatched_at IS NULL"
RELEASED = "status = 'pending' AND dispatched_at IS NOT NULL"


def upgrade() -> None:
    op.add_column(
        'agentic_executions',
        sa.Column(
            'priority', sa.String(length=16), server_default='interactive', nullable=False
        ),
    )
    op.create_check_constraint(
        op.f('ck_agentic_executions_priority'), 'agentic_executions', "priority IN ('interactive', 'batch')"
    )
    op.add_column(
        'agentic_executions', sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE agentic_executions SET dispatched_at = started_at "
        "WHERE status IN ('pending', 'in_progress')"
    )
    op.create_index(
        'ix_agentic_executions_waiting_user',
        'agentic_executions',
        ['priority', 'user_id', 'started_at', 'id'],
        postgresql_where=sa.text(WAITING),
    )
    op.create_index(
        'ix_agentic_executions_waiting_dataset',
        'agentic_executions',
        ['priority', 'dataset_id', 'started_at', 'id'],
        postgresql_where=sa.text(WAITING),
    )
    op.create_index(
        'ix_agentic_executions_released',
        'agentic_executions',
        ['dispatched_at'],
        postgresql_where=sa.text(RELEASED),
    )
    op.add_column(
        'users',
        sa.Column('fair_share_weight', sa.Float(), server_default='1', nullable=False),
    )
    op.create_check_constraint(
        op.f('ck_users_fair_share_weight'), 'users', 'fair_share_weight > 0 AND fair_share_weight <= 1000'
    )
    op.create_table(
        'fair_share_usage',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('key', sa.BigInteger(), nullable=False),
        sa.Column('usage', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_fair_share_usage')),
    )


def downgrade() -> None:
    op.drop_table('fair_share_usage')
    op.drop_constraint('ck_users_fair_share_weight', 'users')
    op.drop_column('users', 'fair_share_weight')
    op.drop_index('ix_agentic_executions_released', 'agentic_executions')
    op.drop_index('ix_agentic_executions_waiting_dataset', 'agentic_executions')
    op.drop_index('ix_agentic_executions_waiting_user', 'agentic_executions')
    op.drop_column('agentic_executions', 'dispatched_at')
    op.drop_constraint('ck_agentic_executions_priority', 'agentic_executions')
    op.drop_column('agentic_executions', 'priority')

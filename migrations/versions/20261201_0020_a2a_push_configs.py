"""webhook_endpoints of one execution: A2A push notification configs

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-01 09:00:00.000000

Nullable columns only (expand): the previous release reads and writes the table unchanged.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0020'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('webhook_endpoints', sa.Column('execution_id', sa.Integer(), nullable=True))
    op.add_column(
        'webhook_endpoints',
        sa.Column('a2a_push_config', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_index(
        op.f('ix_webhook_endpoints_execution_id'), 'webhook_endpoints', ['execution_id']
    )
    op.create_foreign_key(
        op.f('fk_webhook_endpoints_execution_id_agentic_executions'),
        'webhook_endpoints',
        'agentic_executions',
        ['execution_id'],
        ['id'],
        ondelete='CASCADE',
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f('fk_webhook_endpoints_execution_id_agentic_executions'),
        'webhook_endpoints',
        type_='foreignkey',
    )
    op.drop_index(op.f('ix_webhook_endpoints_execution_id'), table_name='webhook_endpoints')
    op.drop_column('webhook_endpoints', 'a2a_push_config')
    op.drop_column('webhook_endpoints', 'execution_id')

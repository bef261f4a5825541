"""the agent's dataset on each execution, for the list filtered by dataset

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 04:05:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('agentic_executions', sa.Column('dataset_id', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE agentic_executions AS e SET dataset_id = a.dataset_id "
        "FROM agents AS a WHERE a.id = e.agent_id"
    )
    op.alter_column('agentic_executions', 'dataset_id', nullable=False)
    op.create_foreign_key(op.f('fk_agentic_executions_dataset_id_datasets'), 'agentic_executions', 'datasets', ['dataset_id'], ['id'], ondelete='CASCADE')
    op.create_index('ix_agentic_executions_dataset_started', 'agentic_executions', ['dataset_id', 'started_at', 'id'], unique=False)
    op.create_index('ix_agentic_executions_user_dataset_started', 'agentic_executions', ['user_id', 'dataset_id', 'started_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_agentic_executions_user_dataset_started', table_name='agentic_executions')
    op.drop_index('ix_agentic_executions_dataset_started', table_name='agentic_executions')
    op.drop_constraint(op.f('fk_agentic_executions_dataset_id_datasets'), 'agentic_executions', type_='foreignkey')
    op.drop_column('agentic_executions', 'dataset_id')

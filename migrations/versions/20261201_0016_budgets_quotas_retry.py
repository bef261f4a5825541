"""usage limits on agents and executions, quotas on users, retry and resume links

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-01 08:50:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0016'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A status event's payload (migration 0014): the columns of an execution that change with its
# status, now with the usage stored when a run ends, so that a terminal status event (and its
# webhook) shows the execution's usage as its GET does.
_STATUS_FUNCTION = """
CREATE OR REPLACE FUNCTION record_execution_status_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    next_sequence integer;
BEGIN
    -- Deferred to commit, under the row lock the status change took (or on a new row).
    SELECT coalesce(max(sequence), 0) + 1 INTO next_sequence
    FROM execution_events WHERE execution_id = NEW.id;
    INSERT INTO execution_events (execution_id, sequence, type, payload, created_at)
    VALUES (NEW.id, next_sequence, 'status', jsonb_build_object(
        'status', NEW.status, 'result', NEW.result, 'failure_code', NEW.failure_code,
        'failure_explanation', NEW.failure_explanation, 'finished_at', NEW.finished_at
        {usage}), now());
    PERFORM pg_notify('agentrun_execution_events', NEW.id || ' ' || next_sequence);
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    # All nullable without defaults: the previous release's INSERTs keep working during a
    # rolling deploy, and no table is rewritten.
    op.add_column('agents', sa.Column('limits', postgresql.JSONB(), nullable=True))
    op.add_column('users', sa.Column('max_executions_per_day', sa.Integer(), nullable=True))
    op.add_column('users', sa.Column('max_tokens_per_day', sa.BigInteger(), nullable=True))
    op.add_column('agentic_executions', sa.Column('limits', postgresql.JSONB(), nullable=True))
    op.add_column('agentic_executions', sa.Column('retry_of_id', sa.Integer(), nullable=True))
    op.add_column('agentic_executions', sa.Column('resume_from_id', sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f('fk_agentic_executions_retry_of_id_agentic_executions'),
        'agentic_executions',
        'agentic_executions',
        ['retry_of_id'],
        ['id'],
        ondelete='SET NULL',
    )
    op.create_foreign_key(
        op.f('fk_agentic_executions_resume_from_id_agentic_executions'),
        'agentic_executions',
        'agentic_executions',
        ['resume_from_id'],
        ['id'],
        ondelete='SET NULL',
    )
    # `retried_by` of an execution is read through this index; few rows have it set.
    op.create_index(
        'ix_agentic_executions_retry_of',
        'agentic_executions',
        ['retry_of_id'],
        postgresql_where=sa.text('retry_of_id IS NOT NULL'),
    )
    op.execute(_STATUS_FUNCTION.format(usage=", 'usage', NEW.usage"))


def downgrade() -> None:
    op.execute(_STATUS_FUNCTION.format(usage=""))
    op.drop_index('ix_agentic_executions_retry_of', table_name='agentic_executions')
    op.drop_constraint(
        op.f('fk_agentic_executions_resume_from_id_agentic_executions'),
        'agentic_executions',
        type_='foreignkey',
    )
    op.drop_constraint(
        op.f('fk_agentic_executions_retry_of_id_agentic_executions'),
        'agentic_executions',
        type_='foreignkey',
    )
    op.drop_column('agentic_executions', 'resume_from_id')
    op.drop_column('agentic_executions', 'retry_of_id')
    op.drop_column('agentic_executions', 'limits')
    op.drop_column('users', 'max_tokens_per_day')
    op.drop_column('users', 'max_executions_per_day')
    op.drop_column('agents', 'limits')

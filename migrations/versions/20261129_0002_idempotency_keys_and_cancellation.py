"""idempotency keys and cancellation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 02:29:07.385869

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: existing rows need no rewrite, and NULL keys never collide in the
    # unique constraint (PostgreSQL treats NULLs as distinct).
    op.add_column('agentic_executions', sa.Column('idempotency_key', sa.String(length=255), nullable=True))
    op.add_column('agentic_executions', sa.Column('request_sha256', sa.String(length=64), nullable=True))
    op.add_column('agentic_executions', sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('agentic_executions', sa.Column('cancel_requested_by', sa.String(length=150), nullable=True))
    op.create_unique_constraint(op.f('uq_agentic_executions_user_id_idempotency_key'), 'agentic_executions', ['user_id', 'idempotency_key'])


def downgrade() -> None:
    op.drop_constraint(op.f('uq_agentic_executions_user_id_idempotency_key'), 'agentic_executions', type_='unique')
    op.drop_column('agentic_executions', 'cancel_requested_by')
    op.drop_column('agentic_executions', 'cancel_requested_at')
    op.drop_column('agentic_executions', 'request_sha256')
    op.drop_column('agentic_executions', 'idempotency_key')

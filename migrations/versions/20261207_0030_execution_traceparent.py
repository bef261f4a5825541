"""agentic_executions.traceparent: the W3C trace context of the request that started it

Revision ID: 0030
Revises: 0028
Create Date: 2026-12-07 20:00:00.000000

Nullable, written only when tracing is on (docs/tracing.md): the worker's run span is a child
of it, whichever process enqueues the job (the API after commit, or the reconciler later from
PostgreSQL). An expand-only change: the release before this one never names the column.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0030'
down_revision: str | None = '0028'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'agentic_executions',
        sa.Column('traceparent', sa.String(length=55), nullable=True),
    )


def downgrade() -> None:
    op.drop_column('agentic_executions', 'traceparent')

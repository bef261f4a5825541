"""the text of each uploaded file, extracted once at upload, or why there is none

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 04:20:00.000000

Rows stored before it keep both null: their text is extracted when first read.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('conversation_files', sa.Column('extracted_text', sa.Text(), nullable=True))
    op.add_column('conversation_files', sa.Column('extraction_error', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('conversation_files', 'extraction_error')
    op.drop_column('conversation_files', 'extracted_text')

"""webhook signing secrets and A2A push configs encrypted at rest

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 19:00:00.000000

`secret`, `previous_secret` and `a2a_push_config` (a client's token and credentials) become
`*_encrypted` text columns, each value sealed with the first key of AGENTRUN_ENCRYPTION_KEYS as
the service reads it (the environment, or a .env file) when the migration runs
(app/core/encryption.py). With endpoints stored and no key set, it refuses and changes nothing.

Not expand/contract: a plaintext column cannot stay beside its encrypted copy. While the release
rolls out, the previous release's statements naming the old columns fail: its workers' webhook
passes log a warning and leave the deliveries to the new workers (nothing is lost: the outbox
keeps them), and an endpoint created through one of its API pods answers 500
(deploy/README.md).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.core.config import Settings
from app.core.encryption import SETTING, Keyring

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The associated data of each value (app/webhooks/stored_secrets.py).
SECRET = 'webhook_endpoints.secret'
PUSH_CONFIG = 'webhook_endpoints.a2a_push_config'


def _keyring(rows: int) -> Keyring:
    keyring = Settings().keyring
    if keyring.sealing_id is None:
        raise RuntimeError(
            f'{rows} webhook endpoint(s) hold secrets and {SETTING} is not set: set it '
            '(`agentrun keys generate` makes a key), then migrate again. Nothing was changed.'
        )
    return keyring


def _seal(keyring: Keyring, value: str | None, purpose: str) -> str | None:
    return None if value is None else keyring.seal(value, purpose)


def upgrade() -> None:
    # First, so that the table is locked (no row added unseen) before it is read; a refusal
    # below rolls the whole migration back.
    for name in ('secret_encrypted', 'previous_secret_encrypted', 'a2a_push_config_encrypted'):
        op.add_column('webhook_endpoints', sa.Column(name, sa.Text(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            'SELECT id, secret, previous_secret, a2a_push_config::text AS push '
            'FROM webhook_endpoints ORDER BY id'
        )
    ).all()
    if rows:
        keyring = _keyring(len(rows))
        update = sa.text(
            'UPDATE webhook_endpoints SET secret_encrypted = :secret, '
            'previous_secret_encrypted = :previous, a2a_push_config_encrypted = :push '
            'WHERE id = :id'
        )
        for row in rows:
            bind.execute(
                update,
                {
                    'id': row.id,
                    'secret': keyring.seal(row.secret, SECRET),
                    'previous': _seal(keyring, row.previous_secret, SECRET),
                    'push': _seal(keyring, row.push, PUSH_CONFIG),
                },
            )
    op.alter_column('webhook_endpoints', 'secret_encrypted', nullable=False)
    for name in ('secret', 'previous_secret', 'a2a_push_config'):
        op.drop_column('webhook_endpoints', name)


def downgrade() -> None:
    op.add_column('webhook_endpoints', sa.Column('secret', sa.String(length=100), nullable=True))
    op.add_column(
        'webhook_endpoints', sa.Column('previous_secret', sa.String(length=100), nullable=True)
    )
    op.add_column(
        'webhook_endpoints',
        sa.Column('a2a_push_config', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            'SELECT id, secret_encrypted, previous_secret_encrypted, a2a_push_config_encrypted '
            'FROM webhook_endpoints ORDER BY id'
        )
    ).all()
    if rows:
        keyring = _keyring(len(rows))
        update = sa.text(
            'UPDATE webhook_endpoints SET secret = :secret, previous_secret = :previous, '
            'a2a_push_config = CAST(:push AS jsonb) WHERE id = :id'
        )
        for row in rows:
            bind.execute(
                update,
                {
                    'id': row.id,
                    'secret': keyring.open(row.secret_encrypted, SECRET),
                    'previous': keyring.open_optional(row.previous_secret_encrypted, SECRET),
                    'push': keyring.open_optional(row.a2a_push_config_encrypted, PUSH_CONFIG),
                },
            )
    op.alter_column('webhook_endpoints', 'secret', nullable=False)
    for name in ('secret_encrypted', 'previous_secret_encrypted', 'a2a_push_config_encrypted'):
        op.drop_column('webhook_endpoints', name)

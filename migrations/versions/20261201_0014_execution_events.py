"""execution_events: each execution's event log (statuses, trace entries), written by triggers; webhook endpoints, deliveries and attempts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 05:00:00.000000

The triggers write the log in the transaction of the change that causes each event, whatever
statement makes it (app/events/models.py says why and how the sequence stays gap-free), and
announce each committed event with NOTIFY.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns of an execution that change with its status: a status event's payload.
_STATUS_PAYLOAD = """jsonb_build_object(
    'status', {row}.status, 'result', {row}.result, 'failure_code', {row}.failure_code,
    'failure_explanation', {row}.failure_explanation, 'finished_at', {row}.finished_at)"""

_STATUS_FUNCTION = f"""
CREATE FUNCTION record_execution_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_sequence integer;
BEGIN
    -- Deferred to commit, under the row lock the status change took (or on a new row).
    SELECT coalesce(max(sequence), 0) + 1 INTO next_sequence
    FROM execution_events WHERE execution_id = NEW.id;
    INSERT INTO execution_events (execution_id, sequence, type, payload, created_at)
    VALUES (NEW.id, next_sequence, 'status', {_STATUS_PAYLOAD.format(row='NEW')}, now());
    PERFORM pg_notify('agentrun_execution_events', NEW.id || ' ' || next_sequence);
    RETURN NULL;
END;
$$
"""

_TRACE_FUNCTION = """
CREATE FUNCTION record_execution_trace_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target integer;
    next_sequence integer;
BEGIN
    -- A pending execution has no trace yet (its conversation's "file" entries are not one).
    -- The lock orders this event with any other of the execution.
    SELECT id INTO target FROM agentic_executions
    WHERE conversation_id = NEW.conversation_id AND status <> 'pending'
    FOR NO KEY UPDATE;
    IF target IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(max(sequence), 0) + 1 INTO next_sequence
    FROM execution_events WHERE execution_id = target;
    -- No webhook is sent for a trace entry: dispatched already.
    INSERT INTO execution_events
        (execution_id, sequence, type, message_id, created_at, dispatched_at)
    VALUES (target, next_sequence, 'trace', NEW.id, now(), now());
    PERFORM pg_notify('agentrun_execution_events', target || ' ' || next_sequence);
    RETURN NULL;
END;
$$
"""

_TRIGGERS = (
    """CREATE CONSTRAINT TRIGGER execution_status_event_on_insert
    AFTER INSERT ON agentic_executions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION record_execution_status_event()""",
    """CREATE CONSTRAINT TRIGGER execution_status_event_on_update
    AFTER UPDATE OF status ON agentic_executions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION record_execution_status_event()""",
    """CREATE TRIGGER execution_trace_event AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION record_execution_trace_event()""",
)


def upgrade() -> None:
    op.create_table(
        'execution_events',
        sa.Column('execution_id', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('message_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("type IN ('status', 'trace')", name=op.f('ck_execution_events_type')),
        sa.ForeignKeyConstraint(
            ['execution_id'], ['agentic_executions.id'],
            name=op.f('fk_execution_events_execution_id_agentic_executions'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['message_id'], ['messages.id'],
            name=op.f('fk_execution_events_message_id_messages'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('execution_id', 'sequence', name=op.f('pk_execution_events')),
    )
    op.create_index(
        op.f('ix_execution_events_message_id'), 'execution_events', ['message_id'], unique=False
    )
    op.create_index(
        'ix_execution_events_undispatched', 'execution_events', ['created_at'], unique=False,
        postgresql_where='dispatched_at IS NULL',
    )
    # Executions stored before: their current status as their first event (no webhook for it).
    op.execute(
        "INSERT INTO execution_events "
        "(execution_id, sequence, type, payload, created_at, dispatched_at) "
        f"SELECT id, 1, 'status', {_STATUS_PAYLOAD.format(row='agentic_executions')}, now(), "
        "now() FROM agentic_executions"
    )
    _create_webhook_tables()
    op.execute(_STATUS_FUNCTION)
    op.execute(_TRACE_FUNCTION)
    for trigger in _TRIGGERS:
        op.execute(trigger)


def _create_webhook_tables() -> None:
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('events', postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('disabled_reason', sa.Text(), nullable=True),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('previous_secret', sa.String(length=100), nullable=True),
        sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['agent_id'], ['agents.id'], name=op.f('fk_webhook_endpoints_agent_id_agents'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_webhook_endpoints_user_id_users'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_index(
        op.f('ix_webhook_endpoints_user_id'), 'webhook_endpoints', ['user_id'], unique=False
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('execution_id', sa.Integer(), nullable=False),
        sa.Column('event_sequence', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=40), nullable=False),
        sa.Column('message_id', sa.String(length=64), nullable=False),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f('ck_webhook_deliveries_status'),
        ),
        sa.ForeignKeyConstraint(
            ['endpoint_id'], ['webhook_endpoints.id'],
            name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['execution_id'], ['agentic_executions.id'],
            name=op.f('fk_webhook_deliveries_execution_id_agentic_executions'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint(
            'endpoint_id', 'execution_id', 'event_sequence',
            name=op.f('uq_webhook_deliveries_endpoint_id_execution_id_event_sequence'),
        ),
    )
    op.create_index(
        'ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'], unique=False,
        postgresql_where="status = 'pending'",
    )
    op.create_index(
        'ix_webhook_deliveries_endpoint_created', 'webhook_deliveries',
        ['endpoint_id', 'created_at', 'id'], unique=False,
    )
    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('delivery_id', sa.BigInteger(), nullable=False),
        sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('response_body', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['delivery_id'], ['webhook_deliveries.id'],
            name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
    )
    op.create_index(
        op.f('ix_webhook_attempts_delivery_id'), 'webhook_attempts', ['delivery_id'], unique=False
    )


def downgrade() -> None:
    op.drop_table('webhook_attempts')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
    op.execute("DROP TRIGGER execution_trace_event ON messages")
    op.execute("DROP TRIGGER execution_status_event_on_update ON agentic_executions")
    op.execute("DROP TRIGGER execution_status_event_on_insert ON agentic_executions")
    op.execute("DROP FUNCTION record_execution_trace_event()")
    op.execute("DROP FUNCTION record_execution_status_event()")
    op.drop_index(op.f('ix_execution_events_message_id'), table_name='execution_events')
    op.drop_table('execution_events')

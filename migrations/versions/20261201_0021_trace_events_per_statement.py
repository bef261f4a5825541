"""execution_events: the trace events of one INSERT of messages written by one trigger call

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 10:15:00.000000

The trace trigger of 0014 ran once per message row: a lock, a max(sequence) and a NOTIFY for
each entry. It now runs once per statement (a transition table of the new rows): per execution
the statement wrote to, one lock, one max(sequence), one INSERT of its events (in message id
order, the sequence gap-free as before) and one NOTIFY naming the last of them (the listener
reads only the execution id: app/events/listener.py). The events written are the same.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PER_STATEMENT = """
CREATE OR REPLACE FUNCTION record_execution_trace_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target record;
    last_sequence integer;
    written integer;
BEGIN
    -- A pending execution has no trace yet (its conversation's "file" entries are not one).
    -- The lock orders these events with any other of the execution; taken in id order.
    FOR target IN
        SELECT id, conversation_id FROM agentic_executions
        WHERE conversation_id IN (SELECT conversation_id FROM new_messages)
            AND status <> 'pending'
        ORDER BY id
        FOR NO KEY UPDATE
    LOOP
        SELECT coalesce(max(sequence), 0) INTO last_sequence
        FROM execution_events WHERE execution_id = target.id;
        -- No webhook is sent for a trace entry: dispatched already.
        INSERT INTO execution_events
            (execution_id, sequence, type, message_id, created_at, dispatched_at)
        SELECT target.id, last_sequence + row_number() OVER (ORDER BY id), 'trace', id,
            now(), now()
        FROM new_messages WHERE conversation_id = target.conversation_id;
        GET DIAGNOSTICS written = ROW_COUNT;
        PERFORM pg_notify(
            'agentrun_execution_events', target.id || ' ' || (last_sequence + written));
    END LOOP;
    RETURN NULL;
END;
$$
"""

_PER_ROW = """
CREATE OR REPLACE FUNCTION record_execution_trace_event() RETURNS trigger LANGUAGE plpgsql AS $$
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


def upgrade() -> None:
    op.execute("DROP TRIGGER execution_trace_event ON messages")
    op.execute(_PER_STATEMENT)
    op.execute(
        "CREATE TRIGGER execution_trace_event AFTER INSERT ON messages "
        "REFERENCING NEW TABLE AS new_messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION record_execution_trace_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER execution_trace_event ON messages")
    op.execute(_PER_ROW)
    op.execute(
        "CREATE TRIGGER execution_trace_event AFTER INSERT ON messages "
        "FOR EACH ROW EXECUTE FUNCTION record_execution_trace_event()"
    )

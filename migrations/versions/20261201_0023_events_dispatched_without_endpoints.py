"""execution_events: a status event needs no dispatch while no webhook endpoint is enabled; one NOTIFY per execution and transaction

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-01 11:45:00.000000

Two changes to the trigger functions of 0016 and 0021, the events they write unchanged:

- A status event is written dispatched (``dispatched_at`` set, as a trace event is) when no
  webhook endpoint that could receive it is enabled at that moment (none of all executions,
  none of that execution): the dispatcher would only have marked it so, an UPDATE of each
  status event row, and each of them in the undispatched index meanwhile. An endpoint enabled
  in the same transaction (an A2A push config stored with its task) is seen.
- The NOTIFY names the execution only (``'<execution id>'``, not ``'<id> <sequence>'``): the
  listener reads only the id (app/events/listener.py, also the previous release's), and
  PostgreSQL delivers identical notifications of one transaction once, so a statement that
  writes both trace entries and a status (the worker's outcome) announces them once.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0023'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUS = """
CREATE OR REPLACE FUNCTION record_execution_status_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    next_sequence integer;
BEGIN
    -- Deferred to commit, under the row lock the status change took (or on a new row).
    SELECT coalesce(max(sequence), 0) + 1 INTO next_sequence
    FROM execution_events WHERE execution_id = NEW.id;
    INSERT INTO execution_events
        (execution_id, sequence, type, payload, created_at, dispatched_at)
    VALUES (NEW.id, next_sequence, 'status', jsonb_build_object(
        'status', NEW.status, 'result', NEW.result, 'failure_code', NEW.failure_code,
        'failure_explanation', NEW.failure_explanation, 'finished_at', NEW.finished_at,
        'usage', NEW.usage), now(),
        {dispatched_at});
    PERFORM pg_notify('agentrun_execution_events', {status_payload});
    RETURN NULL;
END;
$$
"""

_TRACE = """
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
        PERFORM pg_notify('agentrun_execution_events', {trace_payload});
    END LOOP;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.execute(
        _STATUS.format(
            # Read at commit (the trigger is deferred): an endpoint stored by the same
            # transaction counts. An endpoint of another execution (an A2A push config) never
            # receives this one's events (app/webhooks/dispatch.py); both probes are indexed.
            dispatched_at=(
                "CASE WHEN EXISTS (SELECT FROM webhook_endpoints WHERE enabled "
                "AND execution_id IS NULL) OR EXISTS (SELECT FROM webhook_endpoints "
                "WHERE enabled AND execution_id = NEW.id) THEN NULL ELSE now() END"
            ),
            status_payload="NEW.id::text",
        )
    )
    op.execute(_TRACE.format(trace_payload="target.id::text"))


def downgrade() -> None:
    op.execute(
        _STATUS.format(
            dispatched_at="NULL", status_payload="NEW.id || ' ' || next_sequence"
        )
    )
    op.execute(_TRACE.format(trace_payload="target.id || ' ' || (last_sequence + written)"))

"""agentic_execution_batches: many inputs submitted as one; each item an execution with batch_id

Revision ID: 0028
Revises: 0025
Create Date: 2026-12-07 19:00:00.000000

Expand only: a new table, two nullable columns of agentic_executions (the previous release
neither writes nor reads them), a nullable webhook_deliveries.batch_id and execution_id made
nullable (a batch's delivery has no execution; the previous release's dispatcher writes only
executions' deliveries, its sender reads no execution_id).

The trigger ``batch_item_status`` runs when an item's status changes, whatever statement does
it (the worker's claim and outcome, a cancel, the reconciler): it announces the batch's
progress (``NOTIFY agentrun_batch_events, '<batch id>'``, delivered once per transaction) and,
when the item ended and no item of its batch is open any more, sets the batch's
``finished_at`` (and its ``finished_dispatched_at`` when no webhook endpoint could receive
``batch.finished``, as 0023 does for status events). The batch row is locked first, so that
the last two items ending at once in two transactions cannot both see the other still open:
the second waits for the first's commit, then reads it. It is not deferred (a constraint
trigger cannot see the other items' commits any better), and runs once a row, after the
statement: a cancel of ten thousand pending items reads the batch row ten thousand times, in
one transaction.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = "0028"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION record_batch_item_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentrun_batch_events', NEW.batch_id::text);
    IF NEW.status NOT IN ('finished', 'failed') THEN
        RETURN NULL;
    END IF;
    PERFORM FROM agentic_execution_batches
    WHERE id = NEW.batch_id AND finished_at IS NULL
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- A statement of its own after the lock: it sees what the lock waited for.
    IF EXISTS (
        SELECT FROM agentic_executions
        WHERE batch_id = NEW.batch_id AND status IN ('pending', 'in_progress')
    ) THEN
        RETURN NULL;
    END IF;
    UPDATE agentic_execution_batches
    SET finished_at = now(),
        finished_dispatched_at = CASE WHEN EXISTS (
            SELECT FROM webhook_endpoints WHERE enabled AND execution_id IS NULL
        ) THEN NULL ELSE now() END
    WHERE id = NEW.batch_id;
    RETURN NULL;
END;
$$
"""

_TRIGGER = """
CREATE TRIGGER batch_item_status AFTER UPDATE OF status ON agentic_executions
FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION record_batch_item_status()
"""


# A batch's items get their first status event (pending) from one INSERT per statement,
# instead of one deferred trigger call a row at commit (10,000 items: ~1.5 s of a loaded
# machine, to a few tens of ms). No NOTIFY: nobody can follow an execution before its insert
# commits, and a follower reads the log after subscribing. The row trigger keeps the others.
_ITEMS_FUNCTION = """
CREATE FUNCTION record_batch_items_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_events
        (execution_id, sequence, type, payload, created_at, dispatched_at)
    SELECT id, 1, 'status', jsonb_build_object(
        'status', status, 'result', result, 'failure_code', failure_code,
        'failure_explanation', failure_explanation, 'finished_at', finished_at,
        'usage', usage), now(),
        CASE WHEN EXISTS (
            SELECT FROM webhook_endpoints WHERE enabled AND execution_id IS NULL
        ) THEN NULL ELSE now() END
    FROM new_items WHERE batch_id IS NOT NULL;
    RETURN NULL;
END;
$$
"""

_INSERT_TRIGGER = """
CREATE CONSTRAINT TRIGGER execution_status_event_on_insert
AFTER INSERT ON agentic_executions DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW {when}EXECUTE FUNCTION record_execution_status_event()
"""

_ITEMS_TRIGGER = """
CREATE TRIGGER batch_items_status_event AFTER INSERT ON agentic_executions
REFERENCING NEW TABLE AS new_items
FOR EACH STATEMENT EXECUTE FUNCTION record_batch_items_inserted()
"""


def upgrade() -> None:
    op.create_table(
        "agentic_execution_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("execution_key", sa.String(length=100), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("limits", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=150), nullable=True),
        sa.Column("finished_dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agentic_execution_batches_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agentic_execution_batches_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agentic_execution_batches")),
        sa.UniqueConstraint(
            "user_id",
            "idempotency_key",
            name=op.f("uq_agentic_execution_batches_user_id_idempotency_key"),
        ),
    )
    op.create_index(
        "ix_agentic_execution_batches_created",
        "agentic_execution_batches",
        ["created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_agentic_execution_batches_user_created",
        "agentic_execution_batches",
        ["user_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_agentic_execution_batches_undispatched",
        "agentic_execution_batches",
        ["finished_at"],
        unique=False,
        postgresql_where=sa.text("finished_at IS NOT NULL AND finished_dispatched_at IS NULL"),
    )
    op.add_column("agentic_executions", sa.Column("batch_id", sa.Integer(), nullable=True))
    op.add_column("agentic_executions", sa.Column("batch_item", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_agentic_executions_batch_id_agentic_execution_batches"),
        "agentic_executions",
        "agentic_execution_batches",
        ["batch_id"],
        ["id"],
        ondelete="CASCADE",
    )
    # No row has a batch yet: the indexes are built at once.
    op.create_index(
        "ix_agentic_executions_batch_item",
        "agentic_executions",
        ["batch_id", "batch_item"],
        unique=True,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index(
        "ix_agentic_executions_batch_status",
        "agentic_executions",
        ["batch_id", "status"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.add_column("webhook_deliveries", sa.Column("batch_id", sa.Integer(), nullable=True))
    op.alter_column("webhook_deliveries", "execution_id", existing_type=sa.Integer(), nullable=True)
    op.create_foreign_key(
        op.f("fk_webhook_deliveries_batch_id_agentic_execution_batches"),
        "webhook_deliveries",
        "agentic_execution_batches",
        ["batch_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_batch",
        "webhook_deliveries",
        ["endpoint_id", "batch_id"],
        unique=True,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)
    op.execute("DROP TRIGGER execution_status_event_on_insert ON agentic_executions")
    op.execute(_INSERT_TRIGGER.format(when="WHEN (NEW.batch_id IS NULL) "))
    op.execute(_ITEMS_FUNCTION)
    op.execute(_ITEMS_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER batch_items_status_event ON agentic_executions")
    op.execute("DROP FUNCTION record_batch_items_inserted()")
    op.execute("DROP TRIGGER execution_status_event_on_insert ON agentic_executions")
    op.execute(_INSERT_TRIGGER.format(when=""))
    op.execute("DROP TRIGGER batch_item_status ON agentic_executions")
    op.execute("DROP FUNCTION record_batch_item_status()")
    op.drop_index("ix_webhook_deliveries_endpoint_batch", table_name="webhook_deliveries")
    op.drop_constraint(
        op.f("fk_webhook_deliveries_batch_id_agentic_execution_batches"),
        "webhook_deliveries",
        type_="foreignkey",
    )
    op.execute("DELETE FROM webhook_deliveries WHERE execution_id IS NULL")
    op.alter_column(
        "webhook_deliveries", "execution_id", existing_type=sa.Integer(), nullable=False
    )
    op.drop_column("webhook_deliveries", "batch_id")
    op.drop_index("ix_agentic_executions_batch_status", table_name="agentic_executions")
    op.drop_index("ix_agentic_executions_batch_item", table_name="agentic_executions")
    op.drop_constraint(
        op.f("fk_agentic_executions_batch_id_agentic_execution_batches"),
        "agentic_executions",
        type_="foreignkey",
    )
    op.drop_column("agentic_executions", "batch_item")
    op.drop_column("agentic_executions", "batch_id")
    op.drop_index(
        "ix_agentic_execution_batches_undispatched", table_name="agentic_execution_batches"
    )
    op.drop_index(
        "ix_agentic_execution_batches_user_created", table_name="agentic_execution_batches"
    )
    op.drop_index("ix_agentic_execution_batches_created", table_name="agentic_execution_batches")
    op.drop_table("agentic_execution_batches")

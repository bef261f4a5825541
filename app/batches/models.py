"""A batch: many inputs submitted as one request, each an ordinary execution of the batch's
agent and key (``agentic_executions.batch_id``, ``batch_item`` its index in the request).

Its counts are not stored: they are one aggregate over its items on the index
``ix_agentic_executions_batch_status`` (at most ``max_batch_items`` entries), so no item's
status change ever waits for a lock on the batch row to bump a counter, and the counts can
never drift from the items. What is stored is what happens once: ``finished_at``, written by
PostgreSQL when the last open item ends (the trigger of migration 0028, whatever code path ends
it), and ``finished_dispatched_at``, the webhook outbox of ``batch.finished``.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class AgenticExecutionBatch(Base):
    __tablename__ = "agentic_execution_batches"
    __table_args__ = (
        # The list is newest first: a user's, and everyone's for admins.
        Index("ix_agentic_execution_batches_user_created", "user_id", "created_at", "id"),
        Index("ix_agentic_execution_batches_created", "created_at", "id"),
        # One batch per (user, Idempotency-Key): a concurrent repeat fails to insert.
        UniqueConstraint("user_id", "idempotency_key"),
        # The batch.finished events the webhook dispatcher has still to turn into deliveries.
        Index(
            "ix_agentic_execution_batches_undispatched",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL AND finished_dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    execution_key: Mapped[str] = mapped_column(String(100))
    # How many items (executions) it was submitted with.
    total: Mapped[int]
    # The request's `limits`, applied to every item (each item stores them too).
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by PostgreSQL when its last open item ended (migration 0028).
    finished_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    cancel_requested_by: Mapped[str | None] = mapped_column(String(150))
    # When the webhook dispatcher turned its end into batch.finished deliveries; set with
    # finished_at when no endpoint could receive it (as a status event's dispatched_at).
    finished_dispatched_at: Mapped[datetime | None]
    # As an execution's: honoured for 24 h from created_at.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_sha256: Mapped[str | None] = mapped_column(String(64))

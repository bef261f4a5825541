import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Dialect,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.core.db import Base, utcnow
from app.core.nul_free import NulFreeJSONB, NulFreeString, NulFreeText


class ExecutionStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({ExecutionStatus.FINISHED, ExecutionStatus.FAILED})
# In the order of the status machine (an IN list in SQL).
OPEN_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS)


class StatusColumn(TypeDecorator[ExecutionStatus]):
    """``status`` as ``ExecutionStatus`` in Python, a plain ``varchar(16)`` of its values in
    PostgreSQL (no enum type: adding a status needs no ALTER TYPE, and the schema is unchanged).
    A value that is no status is refused before it is sent."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else ExecutionStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> ExecutionStatus | None:
        return None if value is None else ExecutionStatus(value)


# The failure code of an execution a user cancelled (explanation: "Cancelled by <username>.").
CANCELLED = "cancelled"


def cancelled_explanation(username: str) -> str:
    return f"Cancelled by {username}."


_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in ExecutionStatus)


class AgenticExecution(Base):
    __tablename__ = "agentic_executions"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        # The list is ordered newest first and filtered by these columns: one index each.
        Index("ix_agentic_executions_started", "started_at", "id"),
        Index("ix_agentic_executions_user_started", "user_id", "started_at", "id"),
        Index("ix_agentic_executions_agent_started", "agent_id", "started_at", "id"),
        Index("ix_agentic_executions_status_started", "status", "started_at", "id"),
        # A user's list is the common case: its filters get indexes of their own.
        Index(
            "ix_agentic_executions_user_agent_started", "user_id", "agent_id", "started_at", "id"
        ),
        Index("ix_agentic_executions_user_status_started", "user_id", "status", "started_at", "id"),
        Index("ix_agentic_executions_dataset_started", "dataset_id", "started_at", "id"),
        Index(
            "ix_agentic_executions_user_dataset_started",
            "user_id",
            "dataset_id",
            "started_at",
            "id",
        ),
        # One execution per (user, Idempotency-Key): a concurrent repeat fails to insert.
        UniqueConstraint("user_id", "idempotency_key"),
        # `retried_by` of an execution is read through this index; few rows have it set.
        Index(
            "ix_agentic_executions_retry_of",
            "retry_of_id",
            postgresql_where=text("retry_of_id IS NOT NULL"),
        ),
        # A batch's items in submission order (its results, the list filtered by batch)...
        Index(
            "ix_agentic_executions_batch_item",
            "batch_id",
            "batch_item",
            unique=True,
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
        # ... and counted by status (its counts, its open items), from the index alone.
        Index(
            "ix_agentic_executions_batch_status",
            "batch_id",
            "status",
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The agent's dataset, copied at creation (agents never change dataset), so that the list
    # filtered by dataset reads one index in order instead of merging one per agent.
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    execution_key: Mapped[str] = mapped_column(String(100))
    # The version of the execution definition at submit (null: stored by a release before
    # versions were recorded).
    definition_version: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[ExecutionStatus] = mapped_column(StatusColumn(), default=ExecutionStatus.PENDING)
    input: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The outcome, from what a model said: NUL characters are replaced (app/core/nul_free.py).
    result: Mapped[Any | None] = mapped_column(NulFreeJSONB)
    failure_code: Mapped[str | None] = mapped_column(NulFreeString(100))
    failure_explanation: Mapped[str | None] = mapped_column(NulFreeText)
    attempts: Mapped[int] = mapped_column(default=0)
    # What the run used, stored when it ends (app/budgets/usage.py): {"requests": n,
    # "input_tokens": n, "output_tokens": n, "cost": USD or null when the price is unknown}.
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The start request's own `limits` (app/budgets/limits.py); the agent's apply too.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Set on an execution started by POST .../retry/: the execution it retries, and, for a
    # resumed retry, the one whose last good step it continues from.
    retry_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="SET NULL")
    )
    resume_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # The client's Idempotency-Key and a digest of what it asked for; the key is honoured for
    # 24 h from started_at, then freed (set to NULL) when it is used again.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    # Set when a user asks to cancel a running execution; the worker aborts it and records
    # failed/cancelled with cancelled_explanation(cancel_requested_by).
    cancel_requested_at: Mapped[datetime | None]
    cancel_requested_by: Mapped[str | None] = mapped_column(String(150))
    # Bumped every few seconds (database clock) by the worker running the execution; an
    # in_progress execution whose heartbeat is stale or NULL (handed back) has no live worker,
    # and the reconciler makes its job runnable again (workers/run/heartbeat.py,
    # workers/background/reconciler.py).
    heartbeat_at: Mapped[datetime | None]
    # Set on an item of a batch (app/batches): the batch, and the item's index in its request.
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_execution_batches.id", ondelete="CASCADE")
    )
    batch_item: Mapped[int | None]

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

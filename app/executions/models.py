import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
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


class ExecutionPriority(enum.StrEnum):
    """Which executions the dispatcher releases first when they wait for a slot
    (app/executions/dispatch.py): every ``interactive`` one before a ``batch`` one, but for the
    reserved share that keeps batch work from waiting forever."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


class PriorityColumn(TypeDecorator[ExecutionPriority]):
    """``priority`` as ``ExecutionPriority``, a ``varchar(16)`` of its values in PostgreSQL."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else ExecutionPriority(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> ExecutionPriority | None:
        return None if value is None else ExecutionPriority(value)


# The failure code of an execution a user cancelled (explanation: "Cancelled by <username>.").
CANCELLED = "cancelled"


def cancelled_explanation(username: str) -> str:
    return f"Cancelled by {username}."


_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in ExecutionStatus)
_PRIORITY_VALUES = ", ".join(f"'{priority.value}'" for priority in ExecutionPriority)
# Pending executions the dispatcher has not released to the workers yet; and those it has (or
# the API enqueued at once), not yet claimed. Each set has partial indexes of its own, empty
# on an idle service.
WAITING = "status = 'pending' AND dispatched_at IS NULL"
RELEASED = "status = 'pending' AND dispatched_at IS NOT NULL"


class AgenticExecution(Base):
    __tablename__ = "agentic_executions"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        CheckConstraint(f"priority IN ({_PRIORITY_VALUES})", name="priority"),
        # The dispatcher reads the waiting executions of each priority key by key (the user's,
        # or the dataset's: AGENTRUN_FAIR_SHARE_KEY), oldest first within a key.
        Index(
            "ix_agentic_executions_waiting_user",
            "priority",
            "user_id",
            "started_at",
            "id",
            postgresql_where=text(WAITING),
        ),
        Index(
            "ix_agentic_executions_waiting_dataset",
            "priority",
            "dataset_id",
            "started_at",
            "id",
            postgresql_where=text(WAITING),
        ),
        # What the reconciler checks (released long ago and still pending: its job was lost).
        Index("ix_agentic_executions_released", "dispatched_at", postgresql_where=text(RELEASED)),
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
        # A schedule's executions, newest first (the list filtered by schedule).
        Index(
            "ix_agentic_executions_schedule_started",
            "schedule_id",
            "started_at",
            "id",
            postgresql_where=text("schedule_id IS NOT NULL"),
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
    priority: Mapped[ExecutionPriority] = mapped_column(
        PriorityColumn(), default=ExecutionPriority.INTERACTIVE, server_default="interactive"
    )
    # When the execution was handed to the workers (enqueued): at insert when nothing waits
    # (the API's path on a service with free slots), else by the dispatcher when its turn
    # comes. NULL while it waits for that turn; unused once it is claimed.
    dispatched_at: Mapped[datetime | None]
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
    # Set on an execution a schedule started (app/schedules); NULL again once it is deleted.
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_execution_schedules.id", ondelete="SET NULL")
    )
    # The W3C traceparent of the start request's span (00-<trace id>-<span id>-<flags>), set
    # only when tracing is on (app/core/tracing.py): the worker's run span is its child, however
    # the job reaches the queue (the API, or the reconciler from this row).
    traceparent: Mapped[str | None] = mapped_column(String(55))

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class FairShareUsage(Base):
    """What the dispatcher released lately, per fairness key (``kind`` "user" or "dataset") and
    per priority (``kind`` "priority", ``key`` the level's rank): a count decayed by half every
    AGENTRUN_FAIR_SHARE_HALF_LIFE_SECONDS, as of ``updated_at``. Written only by the
    dispatcher, under its lock (app/executions/dispatch.py)."""

    __tablename__ = "fair_share_usage"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    usage: Mapped[float]
    updated_at: Mapped[datetime]

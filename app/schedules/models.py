"""A schedule: a stored start command (agent, execution key, input, limits) plus a cron
expression read in an IANA time zone; and its ticks, each claimed once in PostgreSQL.

``next_run_at`` is the next tick still to run (UTC), NULL when the schedule will not tick
again: paused (``enabled`` false), past its ``end_at``, or paused by the service
(``paused_reason``: its owner was disabled or lost access to the agent). A worker claims a
due tick by locking the schedule's row and inserting its ``agentic_execution_schedule_ticks``
row, whose primary key (schedule, tick time) is what makes a tick start at most one
execution whatever the number of processes, and Redis has no part in it.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow
from app.core.nul_free import NulFreeText


class AgenticExecutionSchedule(Base):
    __tablename__ = "agentic_execution_schedules"
    __table_args__ = (
        # The list is newest first: a user's, and everyone's for admins.
        Index("ix_agentic_execution_schedules_user_created", "user_id", "created_at", "id"),
        Index("ix_agentic_execution_schedules_created", "created_at", "id"),
        # What the workers poll: the due ticks, earliest first (only schedules that tick).
        Index(
            "ix_agentic_execution_schedules_due",
            "next_run_at",
            postgresql_where=text("next_run_at IS NOT NULL"),
        ),
        # One schedule per (user, Idempotency-Key): a concurrent repeat fails to insert.
        UniqueConstraint("user_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # The owner: each execution runs as him (his quotas, his tenancy).
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    execution_key: Mapped[str] = mapped_column(String(100))
    # As the owner sent it (validated at creation and again at each tick).
    input: Mapped[dict[str, Any]] = mapped_column(JSONB)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool]
    end_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    # Why the service paused it (enabled set false): "owner_disabled", "agent_not_visible",
    # "tick_error".
    paused_reason: Mapped[str | None] = mapped_column(String(32))
    last_run_at: Mapped[datetime | None]
    # The execution its last tick started (no foreign key: the execution may be deleted).
    last_execution_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # As a start's: a repeat of the creation within 24 h of created_at answers this schedule,
    # so that a client retrying it never makes a second one (two executions a tick).
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_sha256: Mapped[str | None] = mapped_column(String(64))


class ScheduleTick(Base):
    """One tick of a schedule, claimed by inserting this row: ``started`` (an execution,
    pending when stored), ``failed`` (a failed execution says why: the input no longer
    validates, a quota), ``skipped`` (no execution: missed by more than one period while the
    service was down, or the owner was disabled; ``detail`` says which)."""

    __tablename__ = "agentic_execution_schedule_ticks"
    __table_args__ = (
        Index(
            "ix_agentic_execution_schedule_ticks_execution",
            "execution_id",
            postgresql_where=text("execution_id IS NOT NULL"),
        ),
    )

    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("agentic_execution_schedules.id", ondelete="CASCADE"), primary_key=True
    )
    tick_at: Mapped[datetime] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    execution_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="SET NULL")
    )
    detail: Mapped[str | None] = mapped_column(NulFreeText)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)

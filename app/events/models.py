"""An execution's event log: every status it entered and every trace entry written, in order.

The rows are written by PostgreSQL itself (triggers of migrations 0014, 0016, 0021 and 0023), in the
transaction of the change that causes them, whatever code path makes it: the insert of a new
execution, a cancel, the worker's claim and outcome, the reconciler's failures, each trace
entry. So the log is an outbox: an event exists if and only if its change committed.

``sequence`` numbers an execution's events 1, 2, 3, … without gaps: each is taken as
``max + 1`` while the transaction holds the execution's row lock (its status UPDATE took it; a
trace entry's trigger takes it, once per INSERT of messages), so concurrent writers wait for
each other. A status event is written at commit (a deferred trigger), after the trace entries of
its transaction: the terminal status is always an execution's last event. Committed events are
announced by ``NOTIFY agentrun_execution_events, '<execution id>'`` (``app.events.listener``):
PostgreSQL delivers the identical notifications of one transaction once, so one per execution a
transaction wrote events of. A status event written while no webhook endpoint that could
receive it is enabled (none of all executions, none of its own) needs no dispatch: it is
written dispatched, as a trace event always is.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow

NOTIFY_CHANNEL = "agentrun_execution_events"
# A batch whose items moved: '<batch id>', by the trigger of migration 0028 (app/batches).
BATCH_NOTIFY_CHANNEL = "agentrun_batch_events"


class EventType(enum.StrEnum):
    # The execution entered a status; payload: the columns that change with it.
    STATUS = "status"
    # A trace entry was written: the message ``message_id``.
    TRACE = "trace"


_TYPE_VALUES = ", ".join(f"'{kind.value}'" for kind in EventType)


class ExecutionEvent(Base):
    __tablename__ = "execution_events"
    __table_args__ = (
        CheckConstraint(f"type IN ({_TYPE_VALUES})", name="type"),
        Index(
            "ix_execution_events_undispatched",
            "created_at",
            postgresql_where="dispatched_at IS NULL",
        ),
    )

    execution_id: Mapped[int] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    # A status event's status, result, failure_code, failure_explanation and finished_at.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the webhook dispatcher turned the event into deliveries (a trace event needs none,
    # nor a status event written while no endpoint could receive it: set at insert); NULL while it
    # waits for it (app/webhooks).
    dispatched_at: Mapped[datetime | None]

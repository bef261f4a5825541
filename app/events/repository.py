"""The statements on an execution's event log (written by triggers: app/events/models.py)."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Message
from app.events.models import EventType, ExecutionEvent


async def events_after(
    session: AsyncSession, execution_id: int, after: int, limit: int
) -> Sequence[tuple[ExecutionEvent, Message | None]]:
    """The execution's events after sequence ``after``, in order, each trace event with its
    entry."""
    rows = await session.execute(
        select(ExecutionEvent, Message)
        .outerjoin(Message, Message.id == ExecutionEvent.message_id)
        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.sequence > after)
        .order_by(ExecutionEvent.sequence)
        .limit(limit)
    )
    return [(event, message) for event, message in rows]


async def last_sequence(session: AsyncSession, execution_id: int) -> int:
    """The sequence number of the execution's latest event (0 for none)."""
    latest = await session.scalar(
        select(func.max(ExecutionEvent.sequence)).where(ExecutionEvent.execution_id == execution_id)
    )
    return latest or 0


async def status_events_after(
    session: AsyncSession, execution_id: int, after: int
) -> Sequence[tuple[int, dict[str, Any]]]:
    """The sequence and payload of the execution's status events after ``after``, in order
    (the trace entries between them are not read)."""
    rows = await session.execute(
        select(ExecutionEvent.sequence, ExecutionEvent.payload)
        .where(
            ExecutionEvent.execution_id == execution_id,
            ExecutionEvent.sequence > after,
            ExecutionEvent.type == EventType.STATUS.value,
        )
        .order_by(ExecutionEvent.sequence)
    )
    return [(sequence, payload or {}) for sequence, payload in rows]

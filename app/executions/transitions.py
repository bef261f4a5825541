"""The status machine: ``pending → in_progress → finished | failed``.

Every transition is one conditional UPDATE (``WHERE id = :id AND status = :expected``) that
answers whether it happened, so a late or duplicate worker can never move an execution that
another one already ended. ``finished_at`` is set exactly when a terminal state is reached.
The caller owns the transaction (``async with session.begin(): ...``).

A running execution's ``heartbeat_at`` is bumped by its worker (``beat``); one whose heartbeat
is older than ``stale_after`` seconds, or NULL (its worker handed it back), is *orphaned*: only
then may another worker take it over (``restart_attempt``). Heartbeats use the database clock,
so workers' clocks need not agree.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, or_, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.executions.models import AgenticExecution, ExecutionStatus

OPEN_STATUSES = (ExecutionStatus.PENDING.value, ExecutionStatus.IN_PROGRESS.value)


async def _moved(session: AsyncSession, statement: Any) -> bool:
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    # An UPDATE answers with a cursor result, which counts the rows it changed.
    return cast(CursorResult[Any], result).rowcount == 1


def orphaned(stale_after: float) -> ColumnElement[bool]:
    """True for a heartbeat that says no worker holds the execution: NULL or stale."""
    return or_(
        AgenticExecution.heartbeat_at.is_(None),
        AgenticExecution.heartbeat_at < func.now() - timedelta(seconds=stale_after),
    )


async def mark_in_progress(session: AsyncSession, execution_id: int) -> bool:
    """``pending → in_progress``, counting the attempt; the heartbeat starts."""
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.PENDING.value,
        )
        .values(
            status=ExecutionStatus.IN_PROGRESS.value,
            attempts=AgenticExecution.attempts + 1,
            heartbeat_at=func.now(),
        ),
    )


async def restart_attempt(
    session: AsyncSession, execution_id: int, seen_attempts: int, stale_after: float
) -> bool:
    """Take over an orphaned ``in_progress`` execution (its worker died or handed it back):
    one more attempt.

    Conditional on the attempt count seen and on the heartbeat, so that two workers finding the
    same orphan do not both run it, and a live worker's execution is never taken from it.
    """
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
            AgenticExecution.attempts == seen_attempts,
            orphaned(stale_after),
        )
        .values(attempts=seen_attempts + 1, heartbeat_at=func.now()),
    )


async def beat(session: AsyncSession, held: Mapping[int, int]) -> dict[int, bool]:
    """Bump the heartbeat of the executions this worker runs (id → attempt), in one UPDATE.

    Answers, for those still held (in_progress, same attempt), whether a user asked to cancel
    them; the others ended or were taken over by another worker.
    """
    if not held:
        return {}
    result = await session.execute(
        update(AgenticExecution)
        .where(
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
            tuple_(AgenticExecution.id, AgenticExecution.attempts).in_(list(held.items())),
        )
        .values(heartbeat_at=func.now())
        .returning(AgenticExecution.id, AgenticExecution.cancel_requested_at.is_not(None)),
        execution_options={"synchronize_session": False},
    )
    return {row[0]: row[1] for row in result}


async def release(session: AsyncSession, execution_id: int, attempt: int) -> bool:
    """Hand a running execution back (the worker stops before it ends): its heartbeat is
    cleared, so that any worker may take it over at once as the next attempt."""
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
            AgenticExecution.attempts == attempt,
        )
        .values(heartbeat_at=None),
    )


async def mark_finished(
    session: AsyncSession, execution_id: int, result: Any, usage: dict[str, int] | None
) -> bool:
    """``in_progress → finished`` with the validated result."""
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
        )
        .values(
            status=ExecutionStatus.FINISHED.value,
            result=result,
            usage=usage,
            finished_at=utcnow(),
        ),
    )


async def mark_failed(
    session: AsyncSession,
    execution_id: int,
    code: str | None,
    explanation: str,
    usage: dict[str, int] | None = None,
) -> bool:
    """``pending | in_progress → failed``. A missing code is stored as ``unknown``."""
    values: dict[str, Any] = {
        "status": ExecutionStatus.FAILED.value,
        "failure_code": code or "unknown",
        "failure_explanation": explanation,
        "finished_at": utcnow(),
    }
    if usage is not None:
        values["usage"] = usage
    return await _moved(
        session,
        update(AgenticExecution)
        .where(AgenticExecution.id == execution_id, AgenticExecution.status.in_(OPEN_STATUSES))
        .values(**values),
    )

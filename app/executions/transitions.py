"""The status machine: ``pending → in_progress → finished | failed``.

Every transition is one conditional UPDATE (``WHERE id = :id AND status = :expected``) that
answers whether it happened, so a late or duplicate worker can never move an execution that
another one already ended. ``finished_at`` is set exactly when a terminal state is reached.
The caller owns the transaction (``async with session.begin(): ...``).
"""

from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.executions.models import AgenticExecution, ExecutionStatus

OPEN_STATUSES = (ExecutionStatus.PENDING.value, ExecutionStatus.IN_PROGRESS.value)


async def _moved(session: AsyncSession, statement: Any) -> bool:
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    # An UPDATE answers with a cursor result, which counts the rows it changed.
    return cast(CursorResult[Any], result).rowcount == 1


async def mark_in_progress(session: AsyncSession, execution_id: int) -> bool:
    """``pending → in_progress``, counting the attempt."""
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.PENDING.value,
        )
        .values(status=ExecutionStatus.IN_PROGRESS.value, attempts=AgenticExecution.attempts + 1),
    )


async def restart_attempt(session: AsyncSession, execution_id: int, seen_attempts: int) -> bool:
    """Take over an ``in_progress`` execution whose worker died: one more attempt.

    Conditional on the attempt count seen, so that two workers finding the same orphan do not
    both run it.
    """
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
            AgenticExecution.attempts == seen_attempts,
        )
        .values(attempts=seen_attempts + 1),
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

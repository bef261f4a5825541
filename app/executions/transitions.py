"""The status machine: ``pending → in_progress → finished | failed``.

Every transition is one conditional UPDATE (``WHERE id = :id AND status = :expected``) that
answers whether it happened, so a late or duplicate worker can never move an execution that
another one already ended. ``finished_at`` is set exactly when a terminal state is reached.
The caller owns the transaction (``async with session.begin(): ...``). ``start_pending`` and
``conclude_statement`` answer the statement instead of running it, built once with bound
parameters, for the worker's hot path, which sends each as one statement of its own.
A user's cancellation fails a pending execution at once (``cancel_pending``) and marks a
running one for its worker (``request_cancellation``), which reads the mark
(``requested_cancellation``) and ends it (``mark_failed``) or lets it win at the conclusion.

A running execution's ``heartbeat_at`` is bumped by its worker (``beat``); one whose heartbeat
is older than ``stale_after`` seconds, or NULL (its worker handed it back), is *orphaned*: only
then may another worker take it over (``restart_attempt``). Heartbeats use the database clock,
so workers' clocks need not agree.
"""

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Exists,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.executions.models import (
    CANCELLED,
    OPEN_STATUSES,
    AgenticExecution,
    ExecutionStatus,
    cancelled_explanation,
)


async def _moved(
    session: AsyncSession, statement: Any, parameters: dict[str, Any] | None = None
) -> bool:
    result = await session.execute(
        statement, parameters, execution_options={"synchronize_session": False}
    )
    # An UPDATE answers with a cursor result, which counts the rows it changed.
    return cast(CursorResult[Any], result).rowcount == 1


def orphaned(stale_after: float) -> ColumnElement[bool]:
    """True for a heartbeat that says no worker holds the execution: NULL or stale."""
    return or_(
        AgenticExecution.heartbeat_at.is_(None),
        AgenticExecution.heartbeat_at < func.now() - timedelta(seconds=stale_after),
    )


@functools.cache
def start_pending() -> Update:
    """``pending → in_progress`` as a statement (``execution_id`` bound at execution), counting
    the attempt; the heartbeat starts. Built once; for callers that add to it (the worker's
    claim joins the agent and returns what it runs)."""
    return (
        update(AgenticExecution)
        .where(
            AgenticExecution.id == bindparam("execution_id"),
            AgenticExecution.status == ExecutionStatus.PENDING,
        )
        .values(
            status=ExecutionStatus.IN_PROGRESS,
            attempts=AgenticExecution.attempts + 1,
            heartbeat_at=func.now(),
        )
    )


async def mark_in_progress(session: AsyncSession, execution_id: int) -> bool:
    """``pending → in_progress``, counting the attempt; the heartbeat starts."""
    return await _moved(session, start_pending(), {"execution_id": execution_id})


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
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
            AgenticExecution.attempts == seen_attempts,
            orphaned(stale_after),
        )
        .values(attempts=seen_attempts + 1, heartbeat_at=func.now()),
    )


@functools.cache
def attempt_holds() -> Exists:
    """True while the attempt bound as ``fence_attempt`` holds execution ``fence_execution_id``:
    in_progress, and not taken over since (a takeover counts one more attempt). Every write an
    attempt makes is conditional on it (its trace here; its heartbeat, hand-back and end by
    the same columns), as its claim was: an attempt that lost the execution (its worker lost
    PostgreSQL for longer than the staleness, say) writes nothing over its successor's."""
    return exists().where(
        AgenticExecution.id == bindparam("fence_execution_id"),
        AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
        AgenticExecution.attempts == bindparam("fence_attempt"),
    )


def attempt_values(execution_id: int, attempt: int) -> dict[str, int]:
    """The parameters of ``attempt_holds``."""
    return {"fence_execution_id": execution_id, "fence_attempt": attempt}


async def beat(session: AsyncSession, held: Mapping[int, int]) -> dict[int, bool]:
    """Bump the heartbeat of the executions this worker runs (id → attempt), in one UPDATE.

    Answers, for those still held (in_progress, same attempt, not handed back), whether a user
    asked to cancel them; the others ended, were taken over by another worker, or were handed
    back (``release``: a beat racing the hand-back must not make them look held again, or the
    worker taking them over would find them "running elsewhere" until the heartbeat is stale).
    """
    if not held:
        return {}
    result = await session.execute(
        update(AgenticExecution)
        .where(
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
            tuple_(AgenticExecution.id, AgenticExecution.attempts).in_(list(held.items())),
            AgenticExecution.heartbeat_at.is_not(None),
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
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
            AgenticExecution.attempts == attempt,
        )
        .values(heartbeat_at=None),
    )


async def mark_failed(
    session: AsyncSession,
    execution_id: int,
    code: str | None,
    explanation: str,
    usage: dict[str, Any] | None = None,
    *,
    attempt: int | None = None,
) -> bool:
    """``pending | in_progress → failed``. A missing code is stored as ``unknown``. With
    ``attempt``: only while that attempt holds the execution (in_progress, its attempt count)."""
    values: dict[str, Any] = {
        "status": ExecutionStatus.FAILED,
        "failure_code": code or "unknown",
        "failure_explanation": explanation,
        "finished_at": utcnow(),
    }
    if usage is not None:
        values["usage"] = usage
    fence = (
        AgenticExecution.status.in_(OPEN_STATUSES)
        if attempt is None
        else and_(
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
            AgenticExecution.attempts == attempt,
        )
    )
    return await _moved(
        session,
        update(AgenticExecution).where(AgenticExecution.id == execution_id, fence).values(**values),
    )


async def cancel_pending(session: AsyncSession, execution_id: int, username: str) -> bool:
    """``pending → failed`` with code ``cancelled``, at ``username``'s request (who asked and
    when are kept as ``cancel_requested_by``/``cancel_requested_at``)."""
    return await _moved(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.PENDING,
        )
        .values(_cancelled_now(username, utcnow())),
    )


def _cancelled_now(username: str, now: datetime) -> dict[str, Any]:
    """The values of a pending execution cancelled at ``username``'s request."""
    return {
        "status": ExecutionStatus.FAILED,
        "failure_code": CANCELLED,
        "failure_explanation": cancelled_explanation(username),
        "finished_at": now,
        "cancel_requested_at": now,
        "cancel_requested_by": username,
    }


async def request_cancellation(session: AsyncSession, execution_id: int, username: str) -> None:
    """Ask the worker running an ``in_progress`` execution to stop: ``cancel_requested_at``,
    which its worker reads (``requested_cancellation``) to record the failure. A second request
    keeps the time and name of the first."""
    await session.execute(
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
            AgenticExecution.cancel_requested_at.is_(None),
        )
        .values(cancel_requested_at=utcnow(), cancel_requested_by=username),
        execution_options={"synchronize_session": False},
    )


async def requested_cancellation(session: AsyncSession, execution_id: int) -> str | None:
    """The explanation to record if a user asked to cancel the execution, else None.

    Locks the row until the caller's transaction ends, so that a cancel request arriving
    meanwhile waits and then finds the execution ended.
    """
    row = (
        await session.execute(
            select(AgenticExecution.cancel_requested_at, AgenticExecution.cancel_requested_by)
            .where(AgenticExecution.id == execution_id)
            .with_for_update()
        )
    ).first()
    if row is None or row.cancel_requested_at is None:
        return None
    return cancelled_explanation(row.cancel_requested_by or "a user")


_STATUS = AgenticExecution.status.type


def _cancelled_explanation_sql() -> ColumnElement[str]:
    # cancelled_explanation(<who asked>) computed by PostgreSQL from the row it updates.
    before, after = cancelled_explanation("\x00").split("\x00")
    who = func.coalesce(AgenticExecution.cancel_requested_by, "a user")
    return literal(before) + who + literal(after)


@functools.cache
def conclude_statement(finished: bool) -> Update:
    """The run's end as one conditional UPDATE, its values bound by ``conclusion_values``:
    ``in_progress → finished`` with the result, or ``in_progress → failed``, by the attempt
    that holds the execution (``attempts = :attempt``). It RETURNs the status, failure code and
    explanation stored; no row when the execution was terminal already, or another attempt
    took it over (this one lost it: its outcome must not overwrite anything). Built once per
    kind (building a statement costs more CPU than running it).

    A cancellation a user asked for (``cancel_requested_at``, its abort lost on the way) wins
    over the outcome given: the row stores ``failed``/``cancelled`` instead. The decision is
    taken on the row as it is updated, under its lock: a cancel request committed meanwhile is
    seen (PostgreSQL re-reads the row it waited for), and one that comes later finds the
    execution ended.
    """
    asked = AgenticExecution.cancel_requested_at.is_not(None)
    values: dict[str, Any] = {
        "status": case(
            (asked, literal(ExecutionStatus.FAILED, _STATUS)),
            else_=bindparam("outcome_status", type_=_STATUS),
        ),
        # Bound with the columns' own types, which replace NUL characters (app/core/nul_free.py).
        "failure_code": case(
            (asked, CANCELLED),
            else_=bindparam("outcome_code", type_=AgenticExecution.failure_code.type),
        ),
        "failure_explanation": case(
            (asked, _cancelled_explanation_sql()),
            else_=bindparam("outcome_explanation", type_=AgenticExecution.failure_explanation.type),
        ),
        "usage": bindparam("outcome_usage", type_=AgenticExecution.usage.type),
        "finished_at": bindparam("outcome_finished_at", type_=AgenticExecution.finished_at.type),
    }
    if finished:
        # A cancelled run keeps the result column as it was (empty).
        values["result"] = case(
            (asked, AgenticExecution.result),
            else_=bindparam("outcome_result", type_=AgenticExecution.result.type),
        )
    return (
        update(AgenticExecution)
        .where(
            AgenticExecution.id == bindparam("execution_id"),
            # Only the attempt that holds the execution ends it (see attempt_holds).
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
            AgenticExecution.attempts == bindparam("attempt"),
        )
        .values(**values)
        .returning(
            AgenticExecution.status,
            AgenticExecution.failure_code,
            AgenticExecution.failure_explanation,
        )
    )


def conclusion_values(
    execution_id: int,
    attempt: int,
    *,
    result: Any = None,
    failure_code: str | None = None,
    failure_explanation: str = "",
    usage: dict[str, Any],
) -> dict[str, Any]:
    """The parameters of ``conclude_statement`` for this outcome: finished when
    ``failure_code`` is None, else failed (a missing code is stored as ``unknown``, as
    ``mark_failed`` does)."""
    values: dict[str, Any] = {
        "execution_id": execution_id,
        "attempt": attempt,
        "outcome_usage": usage,
        "outcome_finished_at": utcnow(),
    }
    if failure_code is None:
        values["outcome_status"] = ExecutionStatus.FINISHED
        values["outcome_code"] = values["outcome_explanation"] = None
        values["outcome_result"] = result
    else:
        values["outcome_status"] = ExecutionStatus.FAILED
        values["outcome_code"] = failure_code or "unknown"
        values["outcome_explanation"] = failure_explanation
    return values


# A batch's items (app/batches): cancelled in two statements, whatever their number.


async def cancel_pending_items(
    session: AsyncSession, batch_id: int, username: str, now: datetime
) -> int:
    """``pending → failed`` (``cancelled``) for every pending item of the batch, in one
    UPDATE (the batch's status index finds them); how many."""
    result = await session.execute(
        update(AgenticExecution)
        .where(
            AgenticExecution.batch_id == batch_id,
            AgenticExecution.status == ExecutionStatus.PENDING,
        )
        .values(_cancelled_now(username, now)),
        execution_options={"synchronize_session": False},
    )
    return cast(CursorResult[Any], result).rowcount


async def request_cancel_of_running_items(
    session: AsyncSession, batch_id: int, username: str, now: datetime
) -> list[int]:
    """Mark every running item of the batch ``cancel_requested_at`` (an item asked already
    keeps its first request), as ``cancel_execution`` does one; their ids, for their jobs to
    be aborted once the request is committed. Run before ``cancel_pending_items``: the rows
    are locked in the order the workers lock them (an item, then its batch), never the
    batch first."""
    result = await session.execute(
        update(AgenticExecution)
        .where(
            AgenticExecution.batch_id == batch_id,
            AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
        )
        .values(
            cancel_requested_at=func.coalesce(AgenticExecution.cancel_requested_at, now),
            cancel_requested_by=func.coalesce(AgenticExecution.cancel_requested_by, username),
        )
        .returning(AgenticExecution.id),
        execution_options={"synchronize_session": False},
    )
    return list(result.scalars().all())

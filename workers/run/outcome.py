"""Storing what became of a run: its status and the last entries of its trace, in one statement.

The run's end is one conditional UPDATE (``app.executions.transitions.conclude_statement``: a
cancellation a user asked for wins; an attempt that no longer holds the execution, ended or
taken over, writes nothing) with the trace's closing entries as an INSERT conditional on it, on
an autocommit connection: one round trip, atomic, built once per shape. Should PostgreSQL refuse
it for what it holds (a result it cannot store, say), the trace's end and the outcome are
written apart, so that neither keeps the other out, and a result that cannot be stored still
leaves the execution terminal (``runtime_error``).

Writes are retried while PostgreSQL is unreachable (``workers.run.database``).
"""

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Executable, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.conversations.trace import TraceEntry, trace_values
from app.core.database_errors import is_database_outage
from app.executions.models import (
    CANCELLED,
    ExecutionStatus,
)
from app.executions.transitions import (
    attempt_holds,
    attempt_values,
    conclude_statement,
    conclusion_values,
    mark_failed,
    requested_cancellation,
)
from workers.run.database import in_one_statement
from workers.run.failures import error_text
from workers.run.transcript import append_entries, fenced_trace_insert

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a run came to (``workers.run.loop``), before it is stored (``persist``)."""

    usage: dict[str, Any]
    result: Any = None
    failure_code: str | None = None
    failure_explanation: str | None = None
    # The trace's last entries (what the run did last, then the result or failure entry),
    # written with the outcome in one statement.
    closing: tuple[TraceEntry, ...] = ()

    @property
    def finished(self) -> bool:
        return self.failure_code is None

    @property
    def status(self) -> ExecutionStatus:
        return ExecutionStatus.FINISHED if self.finished else ExecutionStatus.FAILED


@dataclass(frozen=True)
class Attempt:
    """The attempt whose outcome is stored: only while it holds the execution."""

    execution_id: int
    conversation_id: int
    number: int


async def persist(
    sessionmaker: async_sessionmaker[AsyncSession],
    attempt: Attempt,
    outcome: Outcome,
    retry_for: float,
) -> Outcome | None:
    """Store the outcome of ``attempt`` with its closing trace entries, and answer what was
    stored; None if the attempt no longer holds the execution (it ended, or another attempt
    took it over): then nothing is written. Retried while PostgreSQL is unreachable; raises if
    it stays so (the execution then stays in_progress, and is run again once its heartbeat is
    stale)."""
    execution_id = attempt.execution_id

    async def conclude(outcome: Outcome, closing: Sequence[TraceEntry]) -> Outcome | None:
        return await in_one_statement(
            sessionmaker,
            partial(_conclude, attempt, outcome, closing),
            retry_for=retry_for,
            what=f"execution {execution_id}: storing its outcome",
        )

    closing = outcome.closing
    try:
        return await conclude(outcome, closing)
    except Exception as exc:
        if is_database_outage(exc):
            raise
        logger.exception("execution %s: the outcome could not be stored", execution_id)
    if closing:
        await _write_closing(sessionmaker, attempt, closing, retry_for)
    if outcome.finished:
        try:
            return await conclude(outcome, ())
        except Exception as exc:
            if is_database_outage(exc):
                raise
            # A result PostgreSQL refuses must still leave the execution terminal.
            logger.exception("execution %s: the result could not be stored", execution_id)
            outcome = Outcome(
                usage=outcome.usage,
                failure_code="runtime_error",
                failure_explanation=f"The result could not be stored: {error_text(exc)}",
            )
    return await conclude(outcome, ())


async def _write_closing(
    sessionmaker: async_sessionmaker[AsyncSession],
    attempt: Attempt,
    closing: Sequence[TraceEntry],
    retry_for: float,
) -> None:
    # A transcript that cannot be written must not hide the outcome, the source of truth.
    try:
        await append_entries(
            sessionmaker,
            attempt.conversation_id,
            closing,
            execution_id=attempt.execution_id,
            attempt=attempt.number,
            retry_for=retry_for,
            what="writing the end of the trace",
        )
    except Exception:
        logger.exception("could not write the end of the transcript")


@functools.lru_cache(maxsize=64)
def _statement(finished: bool, closing_rows: int) -> Executable:
    """The outcome's UPDATE and, when ``closing_rows``, an INSERT of that many trace entries
    that runs only if the UPDATE did (the attempt still held the execution): the UPDATE in a
    WITH query the INSERT reads, both answered by one statement. Built once per shape: that
    costs more CPU than running it."""
    statement = conclude_statement(finished)
    if not closing_rows:
        return statement
    concluded = statement.cte("concluded")
    closing = fenced_trace_insert(closing_rows, exists(select(concluded.c.status))).cte("closing")
    return select(
        concluded.c.status, concluded.c.failure_code, concluded.c.failure_explanation
    ).add_cte(closing)


async def _conclude(
    attempt: Attempt,
    outcome: Outcome,
    closing: Sequence[TraceEntry],
    connection: AsyncConnection,
) -> Outcome | None:
    """One try at storing the outcome (with ``closing`` written in the same statement)."""
    execution_id = attempt.execution_id
    values = conclusion_values(
        execution_id,
        attempt.number,
        result=outcome.result,
        failure_code=outcome.failure_code,
        failure_explanation=outcome.failure_explanation or "",
        usage=outcome.usage,
    )
    if closing:
        values.update(trace_values(attempt.conversation_id, closing))
    statement = _statement(outcome.finished, len(closing))
    row = (await connection.execute(statement, values)).first()
    if row is None:
        logger.warning(
            "execution %s: attempt %s no longer holds it (ended, or taken over by another "
            "attempt); its outcome is dropped",
            execution_id,
            attempt.number,
        )
        return None
    status, failure_code, failure_explanation = row
    logger.info("execution %s %s", execution_id, status)
    if status == ExecutionStatus.FINISHED:
        return outcome
    return Outcome(
        usage=outcome.usage, failure_code=failure_code, failure_explanation=failure_explanation
    )


async def record_cancellation(
    sessionmaker: async_sessionmaker[AsyncSession], attempt: Attempt, usage: dict[str, Any]
) -> str | None:
    """Fail the execution as cancelled if a user asked for it, while ``attempt`` holds it; the
    explanation, or None."""
    execution_id = attempt.execution_id
    async with sessionmaker() as session, session.begin():
        explanation = await requested_cancellation(session, execution_id)
        if explanation is None:
            return None
        # The trace's last entry, in the same transaction: written only if the attempt still
        # holds the execution, which the UPDATE then fails.
        ending = TraceEntry("failure", explanation, payload={"failure_code": CANCELLED})
        await session.execute(
            fenced_trace_insert(1, attempt_holds()),
            {
                **trace_values(attempt.conversation_id, [ending]),
                **attempt_values(execution_id, attempt.number),
            },
        )
        failed = await mark_failed(
            session, execution_id, CANCELLED, explanation, usage, attempt=attempt.number
        )
        if not failed:
            return None
    logger.info("execution %s cancelled", execution_id)
    return explanation

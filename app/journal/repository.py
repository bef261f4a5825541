"""The statements of the step journal (``app.journal.models``): an attempt's writes, each one
statement fenced by the attempt, and the reads a resume starts from."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelResponse
from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Table,
    bindparam,
    delete,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.db import utcnow
from app.executions.transitions import attempt_holds
from app.journal.models import ExecutionStep, StepKind

_COLUMNS = ("execution_id", "step", "call_id", "kind", "name", "attempt", "args_hash")


@dataclass(frozen=True)
class JournaledStep:
    """One row of the journal as a resume reads it."""

    step: int
    call_id: str
    kind: StepKind
    name: str
    attempt: int
    args_hash: str
    result: Any
    # False: an at-most-once tool started and reported nothing (its worker died meanwhile).
    finished: bool


@functools.lru_cache(maxsize=4)
def fenced_step_write(*, finished: bool) -> Insert:
    """Insert (or replace) one row while the attempt bound as ``fence_*`` holds the execution;
    ``finished``: with its result, else as started (parameters: ``step_values``). Built once."""
    table = cast(Table, ExecutionStep.__table__)
    values = [bindparam(name, type_=table.c[name].type) for name in _COLUMNS]
    result = bindparam("result", type_=table.c.result.type) if finished else literal(None)
    now = bindparam("now", type_=table.c.started_at.type)
    finished_at = now if finished else literal(None, type_=table.c.finished_at.type)
    only_if: ColumnElement[bool] = attempt_holds()
    selected = select(*values, result, now, finished_at).where(only_if)
    statement = pg_insert(table).from_select(
        [*_COLUMNS, "result", "started_at", "finished_at"], selected
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["execution_id", "step", "call_id"],
        set_={
            "kind": excluded.kind,
            "name": excluded.name,
            "attempt": excluded.attempt,
            "args_hash": excluded.args_hash,
            "result": excluded.result,
            # A result written over its own started row keeps when it started.
            "started_at": excluded.started_at if not finished else table.c.started_at,
            "finished_at": excluded.finished_at,
        },
    )


async def write_step(
    connection: AsyncConnection,
    *,
    fence: dict[str, int],
    step: int,
    call_id: str,
    kind: StepKind,
    name: str,
    args_hash: str,
    result: Any = None,
    finished: bool,
) -> bool:
    """One statement: the row, as started or with its result. False when the attempt no
    longer holds the execution (nothing written)."""
    parameters = step_values(
        fence=fence,
        step=step,
        call_id=call_id,
        kind=kind,
        name=name,
        args_hash=args_hash,
        result=result,
        finished=finished,
    )
    written = await connection.execute(fenced_step_write(finished=finished), parameters)
    return bool(cast(Any, written).rowcount)


def step_values(
    *,
    fence: dict[str, int],
    step: int,
    call_id: str,
    kind: StepKind,
    name: str,
    args_hash: str,
    result: Any = None,
    finished: bool,
) -> dict[str, Any]:
    """The parameters of ``fenced_step_write`` for one row."""
    parameters = {
        "execution_id": fence["fence_execution_id"],
        "attempt": fence["fence_attempt"],
        "step": step,
        "call_id": call_id,
        "kind": kind.value,
        "name": name[:200],
        "args_hash": args_hash,
        "now": utcnow(),
        **fence,
    }
    if finished:
        parameters["result"] = result
    return parameters


@functools.lru_cache(maxsize=1)
def _forget_from() -> Delete:
    table = cast(Table, ExecutionStep.__table__)
    return delete(table).where(
        table.c.execution_id == bindparam("fence_execution_id"),
        table.c.step >= bindparam("from_step"),
        attempt_holds(),
    )


async def forget_steps_from(
    connection: AsyncConnection, *, fence: dict[str, int], step: int
) -> None:
    """Drop the rows of ``step`` on: the run took another path there than the earlier
    attempt, whose later steps must not be replayed."""
    await connection.execute(_forget_from(), {**fence, "from_step": step})


def _step_of(row: ExecutionStep) -> JournaledStep:
    return JournaledStep(
        step=row.step,
        call_id=row.call_id,
        kind=StepKind(row.kind),
        name=row.name,
        attempt=row.attempt,
        args_hash=row.args_hash,
        result=row.result,
        finished=row.finished_at is not None,
    )


def _steps_query(execution_id: int) -> Any:
    return (
        select(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id)
        .order_by(ExecutionStep.step, ExecutionStep.started_at)
    )


async def load_steps(
    session: AsyncSession, execution_id: int, *, resuming: int | None = None
) -> list[JournaledStep]:
    """The journal of an execution, in run order. ``resuming``: the execution it continues (a
    retry with resume), whose journal it replays where its own has no row."""
    rows = [_step_of(row) for row in await session.scalars(_steps_query(execution_id))]
    if resuming is None:
        return rows
    own = {(row.step, row.call_id) for row in rows}
    earlier = [_step_of(row) for row in await session.scalars(_steps_query(resuming))]
    inherited = [step for step in earlier if (step.step, step.call_id) not in own]
    return sorted([*inherited, *rows], key=lambda step: step.step)


@dataclass(frozen=True)
class ResumeState:
    """What an execution leaves for a run that continues it: its journal, whose model
    responses and tool results the run replays instead of asking or running them again."""

    execution_id: int
    steps: Sequence[JournaledStep]

    def responses(self) -> list[ModelResponse]:
        """The model responses of the journal, in order, as pydantic-ai messages."""
        payloads = [s.result for s in self.steps if s.kind == StepKind.MODEL and s.finished]
        messages = ModelMessagesTypeAdapter.validate_python(payloads)
        return [m for m in messages if isinstance(m, ModelResponse)]


async def load_resume_state(session: AsyncSession, execution_id: int) -> ResumeState:
    """What a retry with resume of ``execution_id`` continues from."""
    return ResumeState(execution_id, await load_steps(session, execution_id))

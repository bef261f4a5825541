"""Running the schedules' due ticks: what every worker does every
``AGENTRUN_SCHEDULE_POLL_SECONDS`` (workers/background/schedule_ticks.py).

One transaction a tick. The due schedule's row is locked (``FOR UPDATE SKIP LOCKED``: another
worker takes the next due one), its tick is claimed by inserting the tick's row (primary key
schedule and tick time: a tick claimed already is never started again, whatever moved
``next_run_at``), the execution is stored through the start operation as the owner, and
``next_run_at`` moves on; all of it commits together, then the execution is enqueued. A worker
killed, PostgreSQL restarting or the commit failing leaves nothing of the tick, which the next
pass runs; Redis emptied loses no execution (the reconciler enqueues what PostgreSQL holds).
Time is PostgreSQL's (``statement_timestamp()``), the same for every process.

A tick whose start is refused (the input no longer validates against the type's input, a
daily quota) records a failed execution that says why. A schedule whose owner was disabled,
or may no longer use the agent, is paused (``paused_reason``), its tick recorded as skipped.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from arq.connections import ArqRedis
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.service import get_visible_agent
from app.auth.models import User
from app.core.config import Settings
from app.core.database_errors import is_database_outage
from app.core.db import owned_session
from app.core.errors import DomainError, Invalid, NotFound, PayloadTooLarge
from app.executions.quotas import QuotaExceeded
from app.executions.rows import ExecutionRow
from app.executions.start import (
    Origin,
    StartExecution,
    start_execution,
    store_refused_start,
)
from app.schedules.models import AgenticExecutionSchedule, ScheduleTick
from app.schedules.timing import MAX_COUNTED_SKIPS, DueTick, Timing, plan_due_tick

logger = logging.getLogger(__name__)

# The failure codes of a tick's refused start.
INVALID_INPUT = "invalid_input"
QUOTA_EXCEEDED = "quota_exceeded"
START_REFUSED = "start_refused"

# A tick spends most of its time waiting for PostgreSQL (a dozen round trips): this many run at
# once in a worker, each on a schedule of its own (SKIP LOCKED), each holding one connection of
# the worker's pool for a few milliseconds. Measured: bench/scenarios/schedules.py.
TICK_LANES = 4

STARTED = "started"
FAILED = "failed"
SKIPPED = "skipped"

OWNER_DISABLED = "owner_disabled"
AGENT_NOT_VISIBLE = "agent_not_visible"
TICK_ERROR = "tick_error"

_tick_table = cast(Table, ScheduleTick.__table__)
_DUE = (
    select(AgenticExecutionSchedule, func.statement_timestamp().label("now"))
    .where(AgenticExecutionSchedule.next_run_at <= func.statement_timestamp())
    .order_by(AgenticExecutionSchedule.next_run_at)
    .limit(1)
    .with_for_update(skip_locked=True)
)


@dataclass(frozen=True)
class TickRun:
    schedule_id: int
    tick_at: datetime | None
    outcome: str | None
    execution_id: int | None = None


def _flat(errors: Any, prefix: str = "") -> list[str]:
    """``input.skus: Field required`` lines from a 400 body."""
    if isinstance(errors, dict):
        lines: list[str] = []
        for key, value in errors.items():
            lines += _flat(value, f"{prefix}.{key}" if prefix else str(key))
        return lines
    if isinstance(errors, list):
        return [line for item in errors for line in _flat(item, prefix)]
    return [f"{prefix}: {errors}" if prefix and prefix != "detail" else str(errors)]


def refusal(exc: DomainError) -> tuple[str, str]:
    """The failure code and explanation of a tick whose start ``exc`` refused."""
    said = "; ".join(_flat(exc.body))
    if isinstance(exc, Invalid | PayloadTooLarge):
        return INVALID_INPUT, (
            "The schedule's stored start no longer passes the execution type's checks (the "
            f"type may have changed since the schedule was made): {said}. Change the "
            "schedule's input (PATCH) to match."
        )
    if isinstance(exc, QuotaExceeded):
        return QUOTA_EXCEEDED, f"The schedule's owner is over a daily quota: {said}"
    return START_REFUSED, f"The start was refused ({exc.status_code}): {said}"


def _skip_detail(plan: DueTick) -> str:
    counted = f"at least {plan.skipped}" if plan.skipped >= MAX_COUNTED_SKIPS else plan.skipped
    return (
        f"{counted} tick(s) from this one on were missed by more than one period (the service "
        "was down) and skipped; only the latest one due ran."
    )


async def _claim(
    session: AsyncSession, schedule_id: int, tick_at: datetime, outcome: str, detail: str | None
) -> bool:
    """Insert the tick's row; False when it was claimed already."""
    claimed = await session.scalar(
        insert(_tick_table)
        .values(
            schedule_id=schedule_id,
            tick_at=tick_at,
            outcome=outcome,
            detail=detail,
            claimed_at=func.statement_timestamp(),
        )
        .on_conflict_do_nothing()
        .returning(_tick_table.c.schedule_id)
    )
    return claimed is not None


async def _start(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    schedule: AgenticExecutionSchedule,
    owner: User,
) -> tuple[str, ExecutionRow | None, str | None]:
    """Start the tick's execution as its owner: (outcome, execution, detail)."""
    try:
        agent = await get_visible_agent(session, owner, schedule.agent_id)
    except NotFound:
        schedule.enabled, schedule.paused_reason = False, AGENT_NOT_VISIBLE
        return SKIPPED, None, "Paused: the owner may no longer use the agent (or it was deleted)."
    command = StartExecution(
        user=owner,
        agent=agent,
        origin=Origin.SCHEDULE,
        execution_key=schedule.execution_key,
        raw_input=schedule.input,
        limits=schedule.limits,
        schedule_id=schedule.id,
    )
    try:
        async with session.begin_nested():
            started = await start_execution(session, queue, settings, command)
    except DomainError as exc:
        code, explanation = refusal(exc)
        failed = await store_refused_start(session, command, code, explanation)
        return FAILED, failed, explanation
    return STARTED, started.execution, None


class TickFailed(Exception):
    """A tick raised what no rule answers (a plugin's bug, a cron expression the library no
    longer reads): its schedule is set aside, so that it cannot hold up the ones due after it."""

    def __init__(self, schedule_id: int, due: datetime) -> None:
        super().__init__(f"schedule {schedule_id}: tick {due.isoformat()} failed")
        self.schedule_id = schedule_id
        self.due = due


async def run_one_due_tick(
    session: AsyncSession, queue: ArqRedis, settings: Settings
) -> TickRun | None:
    """The earliest due tick no other worker holds, run; None when nothing is due. Raises
    TickFailed for an error that is not the database's."""
    found = (await session.execute(_DUE)).first()
    if found is None:
        return None
    schedule: AgenticExecutionSchedule = found[0]
    due = schedule.next_run_at
    assert due is not None
    try:
        return await _run_tick(session, queue, settings, schedule, due, found.now)
    except Exception as exc:
        if is_database_outage(exc):
            raise
        raise TickFailed(schedule.id, due) from exc


async def _run_tick(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    schedule: AgenticExecutionSchedule,
    due: datetime,
    now: datetime,
) -> TickRun:
    plan = plan_due_tick(Timing.of(schedule.cron, schedule.timezone), due, now, schedule.end_at)
    schedule.next_run_at = plan.next_run_at
    if plan.skipped_from is not None:
        await _claim(session, schedule.id, plan.skipped_from, SKIPPED, _skip_detail(plan))
    if plan.run_at is None or not await _claim(session, schedule.id, plan.run_at, STARTED, None):
        # Past its end, or this tick ran already (its row says how).
        await session.flush()
        return TickRun(schedule.id, plan.run_at, None)
    owner = await session.get_one(User, schedule.user_id)
    if owner.is_active:
        outcome, execution, detail = await _start(session, queue, settings, schedule, owner)
    else:
        schedule.enabled, schedule.paused_reason = False, OWNER_DISABLED
        outcome, execution, detail = SKIPPED, None, "Paused: the owner's account is disabled."
    if not schedule.enabled:
        schedule.next_run_at = None
    execution_id = None if execution is None else execution.id
    await session.execute(
        update(_tick_table)
        .where(_tick_table.c.schedule_id == schedule.id, _tick_table.c.tick_at == plan.run_at)
        .values(outcome=outcome, execution_id=execution_id, detail=detail)
    )
    if execution is not None:
        schedule.last_run_at, schedule.last_execution_id = plan.run_at, execution_id
    await session.flush()
    return TickRun(schedule.id, plan.run_at, outcome, execution_id)


async def set_aside(session: AsyncSession, failed: TickFailed) -> TickRun:
    """Pause the schedule of a tick that failed (``paused_reason`` ``tick_error``), recording
    the tick as skipped, unless the schedule moved on meanwhile."""
    paused = await session.execute(
        update(AgenticExecutionSchedule)
        .where(
            AgenticExecutionSchedule.id == failed.schedule_id,
            AgenticExecutionSchedule.next_run_at == failed.due,
        )
        .values(enabled=False, next_run_at=None, paused_reason=TICK_ERROR)
    )
    if paused.rowcount:  # type: ignore[attr-defined]
        detail = (
            f"Paused: starting the tick failed ({type(failed.__cause__).__name__}); the "
            "operators' worker log has the details. Resume it once the cause is mended."
        )
        await _claim(session, failed.schedule_id, failed.due, SKIPPED, detail)
    return TickRun(failed.schedule_id, failed.due, SKIPPED)


async def run_due_ticks(
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
    *,
    most: int = 1000,
) -> list[TickRun]:
    """Every tick due now (up to ``most``), each in a transaction of its own, ``TICK_LANES``
    at a time."""
    # A tick's execution is stored even while Redis is down (whatever
    # AGENTRUN_REJECT_WHEN_QUEUE_DOWN says for a client, who can retry): the reconciler
    # enqueues it later, and the tick is not lost to a refusal nobody would see.
    settings = settings.model_copy(update={"reject_when_queue_down": False})
    ran: list[TickRun] = []

    async def lane() -> None:
        while len(ran) < most:
            try:
                async with owned_session(sessionmaker) as session:
                    run = await run_one_due_tick(session, queue, settings)
            except TickFailed as failed:
                logger.exception("%s; the schedule is paused", failed)
                async with owned_session(sessionmaker) as session:
                    run = await set_aside(session, failed)
            if run is None:
                return
            ran.append(run)
            if run.outcome is not None:
                logger.info(
                    "schedule %s: tick %s %s (execution %s)",
                    run.schedule_id,
                    run.tick_at.isoformat() if run.tick_at else None,
                    run.outcome,
                    run.execution_id,
                )

    try:
        async with asyncio.TaskGroup() as lanes:
            for _ in range(TICK_LANES):
                lanes.create_task(lane())
    except ExceptionGroup as failed:
        # The first lane's error (the database lost, say) ends the pass, raised as it was; the
        # other lanes were cancelled, their transactions rolled back.
        raise failed.exceptions[0] from None
    return ran

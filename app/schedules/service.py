"""Creating, reading, changing and deleting schedules. A schedule is a start command kept for
later: its execution key and input are checked by the start operation's own ``validate_start``
(the same 400s as a start), and checked again at each tick (app/schedules/ticks.py), as its
owner, when its executions are started."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.agents.service import get_live_agent
from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, Invalid, NotFound
from app.executions.quota_repository import lock_user
from app.executions.start import Origin, StartExecution, validate_start
from app.schedules.models import AgenticExecutionSchedule, ScheduleTick
from app.schedules.schemas import ScheduleChange, ScheduleIn
from app.schedules.timing import BadTiming, Timing, check_cron, first_run_at, parse_timezone

SCHEDULE_NOT_FOUND = "Schedule not found."


def _timing(cron: str, timezone: str) -> tuple[str, Timing]:
    """The cron expression as stored and the schedule's timing; a 400 naming the field."""
    errors: dict[str, list[str]] = {}
    try:
        cron = check_cron(cron)
    except BadTiming as exc:
        errors["cron"] = [str(exc)]
    try:
        parse_timezone(timezone)
    except BadTiming as exc:
        errors["timezone"] = [str(exc)]
    if errors:
        raise Invalid(errors)
    return cron, Timing.of(cron, timezone)


def _check_start(
    settings: Settings,
    owner: User,
    agent: Agent,
    execution_key: str,
    raw_input: dict[str, Any],
    limits: dict[str, Any] | None,
) -> None:
    """What a start with these values would answer now (400, 413), from the start operation."""
    validate_start(
        StartExecution(
            user=owner,
            agent=agent,
            origin=Origin.SCHEDULE,
            execution_key=execution_key,
            raw_input=raw_input,
            limits=limits,
        ),
        settings,
    )


async def create_schedule(
    session: AsyncSession, settings: Settings, user: User, agent: Agent, new: ScheduleIn
) -> AgenticExecutionSchedule:
    """A schedule of ``user`` for ``agent`` (one he may use). 409 past
    ``max_schedules_per_user``."""
    cron, timing = _timing(new.cron, new.timezone)
    _check_start(settings, user, agent, new.execution_key, new.input, new.limits)
    # Counted with his row locked: two creations at once cannot both take the last place.
    await lock_user(session, user.id)
    owned = await session.scalar(
        select(func.count()).where(AgenticExecutionSchedule.user_id == user.id)
    )
    if (owned or 0) >= settings.max_schedules_per_user:
        raise Conflict(
            f"You have {owned} schedules, the most this service allows "
            f"(AGENTRUN_MAX_SCHEDULES_PER_USER={settings.max_schedules_per_user}); "
            "delete one first."
        )
    now = utcnow()
    schedule = AgenticExecutionSchedule(
        agent_id=agent.id,
        user_id=user.id,
        execution_key=new.execution_key,
        input=new.input,
        limits=new.limits,
        cron=cron,
        timezone=new.timezone,
        enabled=new.enabled,
        end_at=new.end_at,
        next_run_at=first_run_at(timing, now, new.end_at) if new.enabled else None,
        created_at=now,
        updated_at=now,
    )
    session.add(schedule)
    await session.flush()
    return schedule


def _visible(user: User) -> Select[AgenticExecutionSchedule]:
    query = select(AgenticExecutionSchedule)
    return query if user.is_admin else query.where(AgenticExecutionSchedule.user_id == user.id)


@dataclass(frozen=True)
class ScheduleList:
    count: int
    schedules: Sequence[AgenticExecutionSchedule]


async def list_schedules(
    session: AsyncSession, user: User, *, offset: int, limit: int
) -> ScheduleList:
    """The user's schedules (an admin's: everyone's), newest first."""
    visible = _visible(user)
    count = await session.scalar(select(func.count()).select_from(visible.subquery()))
    found = await session.scalars(
        visible.order_by(
            AgenticExecutionSchedule.created_at.desc(), AgenticExecutionSchedule.id.desc()
        )
        .offset(offset)
        .limit(limit)
    )
    return ScheduleList(count=count or 0, schedules=found.all())


async def get_visible_schedule(
    session: AsyncSession, user: User, schedule_id: int, *, for_update: bool = False
) -> AgenticExecutionSchedule:
    """The schedule if ``user`` owns it or is an admin; else 404, as for one that is not."""
    query = _visible(user).where(AgenticExecutionSchedule.id == schedule_id)
    if for_update:
        # A worker claiming its tick holds the same lock: a change waits for the tick, and the
        # tick after it sees the change.
        query = query.with_for_update()
    schedule = await session.scalar(query)
    if schedule is None:
        raise NotFound(SCHEDULE_NOT_FOUND)
    return schedule


async def change_schedule(
    session: AsyncSession, settings: Settings, user: User, schedule_id: int, change: ScheduleChange
) -> AgenticExecutionSchedule:
    """Apply the fields ``change`` sets. The start is checked again as it will be made (its
    owner's, on its agent); a new cron, time zone or end, or resuming, moves ``next_run_at``
    to the first tick after now (ticks missed while paused are not run)."""
    schedule = await get_visible_schedule(session, user, schedule_id, for_update=True)
    given = change.model_fields_set
    for field in ("execution_key", "input", "cron", "timezone", "enabled"):
        if field in given and getattr(change, field) is None:
            raise Invalid({field: ["This field may not be null."]})
    cron, timing = _timing(
        change.cron if change.cron is not None else schedule.cron,
        change.timezone if change.timezone is not None else schedule.timezone,
    )
    if given & {"execution_key", "input", "limits"}:
        owner = await session.get_one(User, schedule.user_id)
        agent = await get_live_agent(session, schedule.agent_id)
        _check_start(
            settings,
            owner,
            agent,
            change.execution_key or schedule.execution_key,
            change.input if change.input is not None else schedule.input,
            change.limits if "limits" in given else schedule.limits,
        )
    retimed = bool(given & {"cron", "timezone", "end_at"}) or (
        change.enabled is True and not schedule.enabled
    )
    for field in given:
        setattr(schedule, field, getattr(change, field))
    schedule.cron = cron
    if change.enabled is True:
        schedule.paused_reason = None
    now = utcnow()
    if not schedule.enabled:
        schedule.next_run_at = None
    elif retimed or schedule.next_run_at is None:
        schedule.next_run_at = first_run_at(timing, now, schedule.end_at)
    schedule.updated_at = now
    await session.flush()
    return schedule


async def delete_schedule(session: AsyncSession, user: User, schedule_id: int) -> None:
    """Gone with its ticks; its executions stay, their ``schedule_id`` set to null."""
    schedule = await get_visible_schedule(session, user, schedule_id, for_update=True)
    await session.execute(
        delete(AgenticExecutionSchedule).where(AgenticExecutionSchedule.id == schedule.id)
    )


@dataclass(frozen=True)
class TickList:
    count: int
    ticks: Sequence[ScheduleTick]


async def list_ticks(
    session: AsyncSession, user: User, schedule_id: int, *, offset: int, limit: int
) -> TickList:
    """A visible schedule's ticks, newest first."""
    schedule = await get_visible_schedule(session, user, schedule_id)
    of_schedule = ScheduleTick.schedule_id == schedule.id
    count = await session.scalar(select(func.count()).where(of_schedule))
    found = await session.scalars(
        select(ScheduleTick)
        .where(of_schedule)
        .order_by(ScheduleTick.tick_at.desc())
        .offset(offset)
        .limit(limit)
    )
    return TickList(count=count or 0, ticks=found.all())

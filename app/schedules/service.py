"""Creating, reading, changing and deleting schedules. A schedule is a start command kept for
later: its execution key and input are checked by the start operation's own ``validate_start``
(the same 400s as a start), and checked again at each tick (app/schedules/ticks.py), as its
owner, when its executions are started."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.agents.service import get_live_agent
from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, Invalid, NotFound
from app.executions.quota_repository import lock_user
from app.executions.rows import KeyedRequest
from app.executions.start import Origin, StartExecution, validate_start
from app.executions.start_request import check_idempotency_key
from app.executions.start_store import IdempotencyKeys
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


def request_sha256(agent: Agent, new: ScheduleIn) -> str:
    """A digest of what a creation asks for, to tell a true repeat from a reused key."""
    asked = {"agent": agent.id, **new.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


async def _keyed(session: AsyncSession, user_id: int, idempotency_key: str) -> KeyedRequest | None:
    row = (
        await session.execute(
            select(
                AgenticExecutionSchedule.id,
                AgenticExecutionSchedule.created_at,
                AgenticExecutionSchedule.request_sha256,
            ).where(
                AgenticExecutionSchedule.user_id == user_id,
                AgenticExecutionSchedule.idempotency_key == idempotency_key,
            )
        )
    ).first()
    return None if row is None else KeyedRequest(*row)


async def _release_key(session: AsyncSession, schedule_id: int) -> None:
    await session.execute(
        update(AgenticExecutionSchedule)
        .where(AgenticExecutionSchedule.id == schedule_id)
        .values(idempotency_key=None)
    )


_SCHEDULE_KEYS = IdempotencyKeys(
    find=_keyed,
    release=_release_key,
    read=lambda session, schedule_id: session.get(AgenticExecutionSchedule, schedule_id),
    named=lambda schedule_id: f"schedule ({schedule_id})",
)


@dataclass(frozen=True)
class Created:
    schedule: AgenticExecutionSchedule
    # True when an earlier request with the same Idempotency-Key made it.
    repeated: bool = False


async def create_schedule(
    session: AsyncSession,
    settings: Settings,
    user: User,
    agent: Agent,
    new: ScheduleIn,
    idempotency_key: str | None = None,
) -> Created:
    """A schedule of ``user`` for ``agent`` (one he may use), or the one an earlier request
    with the same Idempotency-Key made (a client's retry must not make a second schedule, which
    would start two executions a tick). 409 past ``max_schedules_per_user``."""
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    cron, timing = _timing(new.cron, new.timezone)
    _check_start(settings, user, agent, new.execution_key, new.input, new.limits)
    digest = request_sha256(agent, new)
    # Counted with his row locked: two creations at once cannot both take the last place (nor
    # two with one Idempotency-Key both miss the other: the second waits, then finds it).
    await lock_user(session, user.id)
    if idempotency_key is not None:
        earlier = await _SCHEDULE_KEYS.earlier_request(session, user.id, idempotency_key, digest)
        if earlier is not None:
            return Created(earlier, repeated=True)
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
        idempotency_key=idempotency_key,
        request_sha256=digest,
    )
    session.add(schedule)
    await session.flush()
    return Created(schedule)


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

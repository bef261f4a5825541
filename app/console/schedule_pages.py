"""The schedules list, one schedule (its ticks; pause, resume, delete) and the form that makes
one: the start form of its execution type plus when it ticks (cron, time zone, an optional
end), created by the service ``POST /api/agents/{id}/agentic-execution-schedules/`` calls,
for the session's user, so its errors are the API's, shown beside their fields."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from app.agents.models import Agent
from app.agents.service import get_visible_agent, list_visible_agents
from app.auth.models import User
from app.console.start_form import PostedInput, field_messages, input_fields, posted_input
from app.console.start_pages import execution_definition
from app.console.web import ConsoleRoute, ConsoleUser, checked_form, redirect, render, text_field
from app.core.config import Settings
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Conflict, Invalid, PayloadTooLarge, field_errors
from app.core.ids import RowId
from app.core.query import Paging
from app.definitions.base import ExecutionDefinition
from app.definitions.registry import definitions_for
from app.schedules import service
from app.schedules.models import AgenticExecutionSchedule
from app.schedules.schemas import (
    CRON_DESCRIPTION,
    TIMEZONE_DESCRIPTION,
    ScheduleChange,
    ScheduleIn,
    ScheduleOut,
)
from app.schedules.timing import BadTiming, parse_timezone

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

# The form's own fields (the input's are named ``input.…``), and where their errors go.
TIMING_FIELDS = ("cron", "timezone", "end_at")
DEFAULT_TIMING = {"cron": "", "timezone": "UTC", "end_at": ""}


def _shown(schedule: AgenticExecutionSchedule, request: Request) -> ScheduleOut:
    """The schedule as the API shows it, its links to console pages."""
    executions = request.url_for("console_executions").include_query_params(schedule=schedule.id)
    ticks = request.url_for("console_schedule", schedule_id=schedule.id)
    return ScheduleOut.of(schedule, executions=str(executions), ticks=str(ticks))


@router.get("/schedules/", name="console_schedules")
async def list_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser, page: str = "1"
) -> Response:
    paging = Paging.of(page, settings.page_size)
    found = await service.list_schedules(session, user, offset=paging.offset, limit=paging.size)
    paging.check_found(len(found.schedules))
    return render(
        request,
        "schedules.html",
        {
            "user": user,
            "schedules": [_shown(schedule, request) for schedule in found.schedules],
            "count": found.count,
            "page": paging.number,
            "has_next": paging.has_next(found.count),
        },
    )


@router.get("/schedules/new/", name="console_schedule_choose")
async def choose(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    agents = await list_visible_agents(session, user)
    choices = [(agent, definitions_for(agent.agent_type)) for agent in agents]
    return render(
        request,
        "start_choose.html",
        {
            "user": user,
            "choices": choices,
            "heading": "New schedule",
            "form_route": "console_schedule_form",
        },
    )


def _form_page(
    request: Request,
    user: User,
    agent: Agent,
    definition: ExecutionDefinition,
    *,
    values: dict[str, str] | None = None,
    input_errors: dict[str, str] | None = None,
    timing_errors: dict[str, str] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    fields = input_fields(definition.input_schema())
    initial = {f.form_name: f.initial() for f in fields} | DEFAULT_TIMING
    return render(
        request,
        "schedule_form.html",
        {
            "user": user,
            "agent": agent,
            "definition": definition,
            "fields": fields,
            "values": values if values is not None else initial,
            "field_errors": input_errors or {},
            "timing_errors": timing_errors or {},
            "errors": errors or [],
            # The API's descriptions, without their Markdown.
            "cron_help": CRON_DESCRIPTION.replace("`timezone`", "the time zone below").replace(
                "`", ""
            ),
            "timezone_help": TIMEZONE_DESCRIPTION.replace("`", ""),
        },
        status_code,
    )


@router.get("/agents/{agent_id}/schedule/{key}/", name="console_schedule_form")
async def form(
    agent_id: RowId, key: str, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    agent = await get_visible_agent(session, user, agent_id)
    return _form_page(request, user, agent, execution_definition(agent, key))


def _end_at(text: str, timezone: str) -> datetime | None:
    """The form's end (``datetime-local``: no offset) read in the schedule's time zone; one
    with an offset as it is. An unknown zone is the service's error to name: no end then."""
    if not text:
        return None
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid({"end_at": ["Expected a date and time, as 2027-01-31T18:00."]}) from None
    if end.tzinfo is not None:
        return end
    try:
        return end.replace(tzinfo=parse_timezone(timezone))
    except BadTiming:
        return None


def _posted_schedule(key: str, posted: PostedInput, form: FormData) -> ScheduleIn:
    """The schedule the form describes, as the API's body would; Invalid naming the fields
    that cannot even be read (bad JSON in an input field, an end that is no date)."""
    if posted.errors:
        raise Invalid({"input": posted.errors})
    timezone = text_field(form, "timezone") or "UTC"
    try:
        return ScheduleIn(
            execution_key=key,
            input=posted.value,
            cron=text_field(form, "cron"),
            timezone=timezone,
            end_at=_end_at(text_field(form, "end_at"), timezone),
            enabled=text_field(form, "paused") != "on",
        )
    except ValidationError as exc:
        raise Invalid(field_errors(exc.errors())) from None


def _messages(body: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """An error body as the form shows it: by input field, by timing field, the rest."""
    timing = {
        name: "; ".join(map(str, message)) if isinstance(message, list) else str(message)
        for name, message in body.items()
        if name in TIMING_FIELDS
    }
    by_field, general = field_messages(
        {name: message for name, message in body.items() if name not in TIMING_FIELDS}
    )
    return by_field, timing, general


@router.post("/agents/{agent_id}/schedule/{key}/", name="console_schedule_post")
async def create(
    agent_id: RowId,
    key: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    form = await checked_form(request)
    agent = await get_visible_agent(session, user, agent_id)
    definition = execution_definition(agent, key)
    posted = posted_input(input_fields(definition.input_schema()), form)
    try:
        new = _posted_schedule(key, posted, form)
        created = await service.create_schedule(session, settings, user, agent, new)
    except (Invalid, PayloadTooLarge, Conflict) as error:
        by_field, timing, general = _messages(error.body)
        return _form_page(
            request,
            user,
            agent,
            definition,
            values={name: value for name, value in form.items() if isinstance(value, str)},
            input_errors=by_field,
            timing_errors=timing,
            errors=general,
            status_code=error.status_code,
        )
    return redirect(request, "console_schedule", schedule_id=created.schedule.id)


@router.get("/schedules/{schedule_id}/", name="console_schedule")
async def schedule_page(
    schedule_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
    page: str = "1",
) -> Response:
    schedule = await service.get_visible_schedule(session, user, schedule_id)
    paging = Paging.of(page, settings.page_size)
    ticks = await service.list_ticks(
        session, user, schedule_id, offset=paging.offset, limit=paging.size
    )
    paging.check_found(len(ticks.ticks))
    return render(
        request,
        "schedule.html",
        {
            "user": user,
            "schedule": _shown(schedule, request),
            "ticks": ticks.ticks,
            "count": ticks.count,
            "page": paging.number,
            "has_next": paging.has_next(ticks.count),
        },
    )


async def _set_enabled(
    request: Request, session: AsyncSession, settings: Settings, user: User, schedule_id: int,
    *, enabled: bool,
) -> Response:  # fmt: skip
    await checked_form(request)
    change = ScheduleChange(enabled=enabled)
    await service.change_schedule(session, settings, user, schedule_id, change)
    return redirect(request, "console_schedule", schedule_id=schedule_id)


@router.post("/schedules/{schedule_id}/pause", name="console_schedule_pause")
async def pause(
    schedule_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    return await _set_enabled(request, session, settings, user, schedule_id, enabled=False)


@router.post("/schedules/{schedule_id}/resume", name="console_schedule_resume")
async def resume(
    schedule_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    """From the next tick after now: the ticks missed while paused are not run."""
    return await _set_enabled(request, session, settings, user, schedule_id, enabled=True)


@router.post("/schedules/{schedule_id}/delete", name="console_schedule_delete")
async def delete(
    schedule_id: RowId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """The executions it started stay (their schedule link emptied)."""
    await checked_form(request)
    await service.delete_schedule(session, user, schedule_id)
    return redirect(request, "console_schedules")

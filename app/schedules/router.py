"""The schedule routes: create (on an agent), list, read, change, delete, and its ticks (the
rules: app/schedules/service.py; the ticks: app/schedules/ticks.py)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.agents.dependencies import AgentRequestDep
from app.auth.dependencies import CurrentUser
from app.core.dependencies import SessionDep, SettingsDep
from app.core.ids import RowId
from app.core.query import Paging
from app.executions.start_request import idempotency_key_header
from app.schedules import service
from app.schedules.models import AgenticExecutionSchedule
from app.schedules.schemas import (
    ScheduleChange,
    ScheduleIn,
    ScheduleOut,
    SchedulePage,
    TickOut,
    TickPage,
)

router = APIRouter(tags=["agentic execution schedules"])

NOT_YOURS: dict[int | str, dict[str, object]] = {
    404: {"description": "No such schedule, or not yours."}
}
INVALID: dict[int | str, dict[str, object]] = {
    400: {
        "description": "A field is wrong, named in the body: `cron`, `timezone`, "
        "`execution_key`, `input` (validated as a start's), `limits`."
    }
}
PageParameter = Annotated[str | None, Query(description="Page number, from 1.", examples=["1"])]


def schedule_out(schedule: AgenticExecutionSchedule, request: Request) -> ScheduleOut:
    """A schedule as the API shows it, its links absolute."""
    executions = request.url_for("list_executions").include_query_params(schedule_id=schedule.id)
    ticks = request.url_for("list_schedule_ticks", schedule_id=schedule.id)
    return ScheduleOut.of(schedule, executions=str(executions), ticks=str(ticks))


@router.post(
    "/agents/{agent_id}/agentic-execution-schedules/",
    status_code=status.HTTP_201_CREATED,
    summary="Create a schedule",
    description="Starts an execution of the agent with this key and input at each tick of "
    "`cron`, read in `timezone`, as you (your quotas); exactly one a tick. A tick missed "
    "while the service was down runs once when it is back if it is less than one period "
    "late, else it is skipped (its tick says so). The input is validated now as a start's "
    "is, and again at each tick: a tick whose input no longer validates records a failed "
    "execution (`invalid_input`) that says why.",
    responses={
        **INVALID,
        404: {"description": "No such agent, or not one you may use."},
        409: {
            "description": "You have as many schedules as the service allows, or the "
            "Idempotency-Key was used in the last 24 hours for a different schedule."
        },
    },
)
async def create_schedule(
    caller: AgentRequestDep,
    body: ScheduleIn,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Makes retries safe: a repeat within 24 hours answers the first schedule instead "
            "of making another (which would start a second execution at every tick)."
        ),
    ] = None,
) -> ScheduleOut:
    created = await service.create_schedule(
        session, settings, caller.user, caller.agent, body, idempotency_key
    )
    if created.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return schedule_out(created.schedule, request)


@router.get(
    "/agentic-execution-schedules/",
    summary="List schedules",
    description="Your schedules (all of them for admins), newest first, 25 a page.",
    responses={404: {"description": "Invalid page."}},
)
async def list_schedules(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    page: PageParameter = None,
) -> SchedulePage:
    paging = Paging.of(page, settings.page_size)
    found = await service.list_schedules(session, user, offset=paging.offset, limit=paging.size)
    return SchedulePage(
        **paging.links(request, found.count, len(found.schedules)),
        results=[schedule_out(schedule, request) for schedule in found.schedules],
    )


@router.get(
    "/agentic-execution-schedules/{schedule_id}/",
    summary="Get a schedule",
    description="With its next and last run; its executions and ticks are linked.",
    responses=NOT_YOURS,
)
async def read_schedule(
    schedule_id: RowId, request: Request, session: SessionDep, user: CurrentUser
) -> ScheduleOut:
    return schedule_out(await service.get_visible_schedule(session, user, schedule_id), request)


@router.patch(
    "/agentic-execution-schedules/{schedule_id}/",
    summary="Change, pause or resume a schedule",
    description='Any field of the creation; `{"enabled": false}` pauses, `{"enabled": true}` '
    "resumes from the next tick after now (ticks missed while paused are not run). A new "
    "key, input or limits is validated as a start's.",
    responses={**INVALID, **NOT_YOURS},
)
async def change_schedule(
    schedule_id: RowId,
    body: ScheduleChange,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> ScheduleOut:
    schedule = await service.change_schedule(session, settings, user, schedule_id, body)
    return schedule_out(schedule, request)


@router.delete(
    "/agentic-execution-schedules/{schedule_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a schedule",
    description="No tick after this; the executions it started stay (their `schedule_id` "
    "becomes null).",
    responses=NOT_YOURS,
)
async def delete_schedule(schedule_id: RowId, session: SessionDep, user: CurrentUser) -> Response:
    await service.delete_schedule(session, user, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/agentic-execution-schedules/{schedule_id}/ticks/",
    summary="List a schedule's ticks",
    description="Newest first, 25 a page: each tick it claimed, with the execution it "
    "started, or why it failed or was skipped.",
    responses=NOT_YOURS,
)
async def list_schedule_ticks(
    schedule_id: RowId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    page: PageParameter = None,
) -> TickPage:
    paging = Paging.of(page, settings.page_size)
    found = await service.list_ticks(
        session, user, schedule_id, offset=paging.offset, limit=paging.size
    )
    return TickPage(
        **paging.links(request, found.count, len(found.ticks)),
        results=[TickOut.of(tick) for tick in found.ticks],
    )

"""The executions list, one execution (its trace growing live), cancel, retry, and file
downloads."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import Response

from app.agents.service import list_visible_agents
from app.catalog.service import list_visible_datasets
from app.console.web import (
    ConsoleRoute,
    ConsoleUser,
    checked_form,
    redirect,
    render,
    text_field,
)
from app.conversations import service as conversations
from app.conversations.schemas import MessageOut
from app.conversations.storage import media_path
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.errors import Invalid, NotFound
from app.core.ids import RowId, is_row_id
from app.core.tracing import trace_url
from app.events.listener import EventListener
from app.events.repository import last_sequence
from app.events.stream import STREAM_HEADERS, EventStream, last_event_id_of
from app.executions import listing, retry, service, start_request
from app.executions.models import TERMINAL_STATUSES, ExecutionStatus
from app.executions.schemas import execution_out

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _number(raw: str, field: str) -> int | None:
    if raw == "":
        return None
    if not is_row_id(raw):
        raise Invalid({field: "Expected the number of one."})
    return int(raw)


def _filters(
    agent: str, status: str, dataset: str, batch: str = "", schedule: str = ""
) -> listing.ExecutionFilters:
    try:
        status_value = ExecutionStatus(status) if status else None
    except ValueError:
        raise Invalid({"status": f"No status {status!r}."}) from None
    return listing.ExecutionFilters(
        agent_id=_number(agent, "agent"),
        status=status_value,
        dataset_id=_number(dataset, "dataset"),
        batch_id=_number(batch, "batch"),
        schedule_id=_number(schedule, "schedule"),
    )


@router.get("/executions/", name="console_executions")
async def list_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
    agent: str = "",
    status: str = "",
    dataset: str = "",
    batch: str = "",
    schedule: str = "",
    page: str = "1",
    rows_only: bool = False,
) -> Response:
    filters = _filters(agent, status, dataset, batch, schedule)
    number = _number(page, "page") or 1
    size = settings.page_size
    found = await listing.list_executions(
        session,
        user,
        filters,
        offset=(number - 1) * size,
        limit=size,
        max_field_bytes=settings.list_max_field_bytes,
    )
    if number > 1 and not found.executions:
        raise NotFound("Invalid page.")
    root_path = request.scope.get("root_path", "")
    context = {
        "user": user,
        "executions": [execution_out(row, root_path) for row in found.executions],
        "filters": {
            "agent": agent,
            "status": status,
            "dataset": dataset,
            "batch": batch,
            "schedule": schedule,
        },
    }
    if rows_only:
        # What the list's script swaps in every few seconds while the page is open.
        return render(request, "execution_rows.html", context)
    count = await listing.count_executions(session, user, filters, found)
    return render(
        request,
        "executions.html",
        context
        | {
            "count": max(count, (number - 1) * size + len(found.executions)),
            "page": number,
            "has_next": found.has_next,
            "agents": await list_visible_agents(session, user),
            "datasets": await list_visible_datasets(session, user),
            "statuses": [s.value for s in ExecutionStatus],
        },
    )


@router.get("/executions/{execution_id}/", name="console_execution")
async def execution_page(
    execution_id: RowId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    # The log's position first: an entry written after it is sent by the stream too, and the
    # page's script skips entries it already shows.
    row = await service.get_visible_execution(session, user, execution_id)
    after = await last_sequence(session, execution_id)
    messages = await conversations.list_messages(session, row.conversation_id)
    execution = execution_out(row, request.scope.get("root_path", ""))
    return render(
        request,
        "execution.html",
        {
            "user": user,
            "execution": execution,
            "terminal": execution.status in TERMINAL_STATUSES,
            "retry_key": str(uuid.uuid4()),
            "trace": [MessageOut.model_validate(m, from_attributes=True) for m in messages],
            "after": after,
            "files": row.files,
            # A link to the trace when AGENTRUN_TRACE_URL_TEMPLATE says where traces are seen.
            "trace_url": trace_url(request.app.state.settings, execution.trace_id),
        },
    )


@router.get("/executions/{execution_id}/events", name="console_execution_events")
async def execution_events(
    execution_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
    after: str = "",
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """The API's event stream, for the session's user: EventSource sends no Authorization
    header, and resumes with Last-Event-ID (the page gives ``after`` the first time)."""
    row = await service.get_visible_execution(session, user, execution_id)
    start = last_event_id_of(last_event_id if last_event_id is not None else after)
    if start > await last_sequence(session, execution_id):
        raise Invalid({"Last-Event-ID": [f"No event {start} in this execution's stream."]})
    listener: EventListener = request.app.state.event_listener
    stream = EventStream(
        request.app.state.sessionmaker,
        listener,
        row,
        after=start,
        root_path=request.scope.get("root_path", ""),
        keep_alive_seconds=settings.event_stream_keep_alive_seconds,
    )
    return StreamingResponse(aiter(stream), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.post("/executions/{execution_id}/cancel", name="console_cancel")
async def cancel(
    execution_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    user: ConsoleUser,
) -> Response:
    await checked_form(request)
    await service.cancel_execution(session, queue, settings, user, execution_id)
    return redirect(request, "console_execution", execution_id=execution_id)


@router.post("/executions/{execution_id}/retry", name="console_retry")
async def retry_it(
    execution_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    user: ConsoleUser,
) -> Response:
    """``POST /api/agentic-executions/{id}/retry/`` from a form: the form's key makes a
    double submit one retry."""
    form = await checked_form(request)
    key = text_field(form, "idempotency_key") or None
    if key is not None:
        start_request.check_idempotency_key(key)
    execution = await service.get_visible_execution(session, user, execution_id)
    started = await retry.retry_execution(
        session,
        queue,
        settings,
        user=user,
        execution=execution,
        resume=text_field(form, "resume") == "true",
        idempotency_key=key,
    )
    return redirect(request, "console_execution", execution_id=started.execution.id)


@router.get("/files/{conversation_id}/{filename}", name="console_file")
async def download(
    conversation_id: RowId,
    filename: str,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    """An execution's file, as /media/ serves it to a token: only to whom may read it."""
    file = await conversations.get_visible_file(
        session, user, f"conversations/{conversation_id}/{filename}"
    )
    return FileResponse(
        media_path(settings.media_root, file.storage_key),
        media_type=file.content_type,
        filename=file.filename,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )

"""The batch routes: submit, list, read, cancel, results, events (the rules:
app/batches/service.py; what the document says: app/batches/openapi.py)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from app.agents.dependencies import AgentRequestDep
from app.auth.dependencies import CurrentUser
from app.batches import service, submission
from app.batches.events import BatchEventStream
from app.batches.openapi import (
    CANCEL_DESCRIPTION,
    CANCEL_RESPONSES,
    EVENTS_DESCRIPTION,
    NOT_YOURS,
    RESULTS_DESCRIPTION,
    RESULTS_RESPONSES,
    SUBMIT_DESCRIPTION,
    SUBMIT_OPENAPI,
    SUBMIT_RESPONSES,
)
from app.batches.repository import BatchRow
from app.batches.results import result_lines
from app.batches.schemas import BatchOut, BatchPage
from app.budgets.limits import parse_limits
from app.core.body_limit import capped_request, read_body
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.errors import Invalid, UnsupportedMediaType
from app.core.ids import RowId
from app.core.json_input import parse_json_body
from app.core.query import Paging
from app.events.stream import STREAM_HEADERS
from app.executions import start, start_request

router = APIRouter(tags=["agentic execution batches"])


def batch_out(batch: BatchRow, request: Request) -> BatchOut:
    """A batch as the API shows it, its links absolute."""
    executions = request.url_for("list_executions").include_query_params(batch_id=batch["id"])
    return BatchOut.of(
        batch,
        results=str(request.url_for("batch_results", batch_id=batch["id"])),
        executions=str(executions),
    )


@router.post(
    "/agents/{agent_id}/agentic-execution-batches/",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a batch",
    description=SUBMIT_DESCRIPTION,
    openapi_extra=SUBMIT_OPENAPI,
    responses=SUBMIT_RESPONSES,
)
async def submit_batch(
    caller: AgentRequestDep,
    request: Request,
    response: Response,
    session: SessionDep,
    queue: QueueDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        start_request.idempotency_key_header("A repeat within 24 hours answers the first batch."),
    ] = None,
) -> BatchOut:
    agent = caller.agent
    if idempotency_key is not None:
        start_request.check_idempotency_key(idempotency_key)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        capped = capped_request(request, settings.max_batch_bytes)
        async with capped.form(max_files=1, max_part_size=settings.max_input_bytes + 1) as form:
            definition = start.definition_of(agent, form.get("execution_key"))
            limits = parse_limits(start_request.parse_form_limits(form.get("limits"), settings))
            file = form.get("items")
            if not isinstance(file, UploadFile):
                raise start_request.field_error("items", "Expected a JSONL file upload.")
            items = submission.validate_items(
                caller.user,
                agent,
                definition,
                submission.jsonl_items(file.file, settings),
                settings,
            )
    elif content_type == "application/json" or content_type.endswith("+json"):
        raw = await read_body(request, settings.max_batch_bytes)
        body = parse_json_body(raw, settings.max_json_depth)
        del raw
        if not isinstance(body, dict):
            raise Invalid("Expected a JSON object with `execution_key` and `items`.")
        definition = start.definition_of(agent, body.get("execution_key"))
        limits = parse_limits(body.get("limits"))
        items = submission.validate_items(
            caller.user, agent, definition, submission.json_items(body.get("items")), settings
        )
        del body
    else:
        raise UnsupportedMediaType(
            f"Unsupported media type {content_type or '(none)'!r}: send application/json or "
            "multipart/form-data."
        )
    submitted = await service.submit_batch(
        session,
        queue,
        settings,
        user=caller.user,
        agent=agent,
        definition=definition,
        inputs=items.inputs,
        limits=limits,
        idempotency_key=idempotency_key,
    )
    if submitted.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return batch_out(submitted.batch, request)


@router.get(
    "/agentic-execution-batches/",
    summary="List batches",
    description="Your batches (all of them for admins), newest first, 25 a page.",
    responses={404: {"description": "Invalid page."}},
)
async def list_batches(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    page: Annotated[str | None, Query(description="Page number, from 1.", examples=["1"])] = None,
) -> BatchPage:
    paging = Paging.of(page, settings.page_size)
    found = await service.list_batches(session, user, offset=paging.offset, limit=paging.size)
    return BatchPage(
        **paging.links(request, found.count, len(found.batches)),
        results=[batch_out(batch, request) for batch in found.batches],
    )


@router.get(
    "/agentic-execution-batches/{batch_id}/",
    summary="Get a batch",
    description="The batch and its counts; poll it, or follow its events.",
    responses=NOT_YOURS,
)
async def read_batch(
    batch_id: RowId, request: Request, session: SessionDep, user: CurrentUser
) -> BatchOut:
    return batch_out(await service.get_visible_batch(session, user, batch_id), request)


@router.post(
    "/agentic-execution-batches/{batch_id}/cancel/",
    summary="Cancel a batch",
    description=CANCEL_DESCRIPTION,
    responses=CANCEL_RESPONSES,
)
async def cancel_batch(
    batch_id: RowId,
    request: Request,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    queue: QueueDep,
    settings: SettingsDep,
) -> BatchOut:
    cancellation = await service.cancel_batch(session, queue, settings, user, batch_id)
    if cancellation.stopping:
        response.status_code = status.HTTP_202_ACCEPTED
    return batch_out(cancellation.batch, request)


@router.get(
    "/agentic-execution-batches/{batch_id}/results/",
    summary="Get a batch's results",
    description=RESULTS_DESCRIPTION,
    response_class=StreamingResponse,
    responses=RESULTS_RESPONSES,
)
async def batch_results(
    batch_id: RowId, request: Request, session: SessionDep, user: CurrentUser
) -> StreamingResponse:
    await service.get_visible_batch(session, user, batch_id)
    # Read with sessions of its own, a chunk at a time, after this request's session ended.
    lines = result_lines(request.app.state.read_sessionmaker, batch_id)
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.jsonl"'},
    )


@router.get(
    "/agentic-execution-batches/{batch_id}/events/",
    summary="Follow a batch's progress",
    description=EVENTS_DESCRIPTION,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **NOT_YOURS},
)
async def batch_events(
    batch_id: RowId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> StreamingResponse:
    await service.get_visible_batch(session, user, batch_id)
    stream = BatchEventStream(
        request.app.state.read_sessionmaker,
        request.app.state.event_listener,
        batch_id,
        lambda batch: batch_out(batch, request).model_dump_json(),
        keep_alive_seconds=settings.event_stream_keep_alive_seconds,
    )
    return StreamingResponse(aiter(stream), media_type="text/event-stream", headers=STREAM_HEADERS)

"""The execution routes: start, read, list, cancel (what the OpenAPI document says of them:
app/executions/openapi.py; the rules: app/executions/service.py)."""

import dataclasses
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from starlette.datastructures import FormData, UploadFile

from app.agents.dependencies import AgentRequestDep
from app.auth.dependencies import CurrentUser
from app.conversations.dependencies import TextExtractorDep
from app.core.body_limit import read_body
from app.core.config import Settings
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.errors import Invalid, NotFound, UnsupportedMediaType
from app.core.ids import RowId
from app.core.json_input import parse_json_body
from app.core.query import EMPTY_IS_NONE, page_number, previous_page_url
from app.executions import listing, service, start, start_request
from app.executions.dependencies import ExecutionRequestDep
from app.executions.models import ExecutionStatus
from app.executions.openapi import (
    CANCEL_DESCRIPTION,
    CANCEL_RESPONSES,
    LIST_DESCRIPTION,
    LIST_RESPONSES,
    READ_DESCRIPTION,
    READ_RESPONSES,
    START_DESCRIPTION,
    START_OPENAPI,
    START_RESPONSES,
)
from app.executions.rows import ExecutionRow
from app.executions.schemas import ExecutionOut, ExecutionPage, execution_out
from app.executions.start import Origin, StartExecution

router = APIRouter(tags=["agentic executions"])


# Room in a JSON start body for what is not its input (the key, the envelope, whitespace).
JSON_ENVELOPE_BYTES = 64 * 1024


async def _json_body(request: Request, settings: Settings) -> dict[str, Any]:
    raw = await read_body(request, settings.max_input_bytes + JSON_ENVELOPE_BYTES)
    body = parse_json_body(raw, settings.max_json_depth)
    if not isinstance(body, dict):
        raise Invalid("Expected a JSON object with `execution_key` and `input`.")
    # Other top-level fields are ignored, as Enthusiast's serializer does (`input` is strict).
    return body


def _json_input(body: dict[str, Any], settings: Settings) -> Any:
    raw = body.get("input", {})
    # A JSON-encoded string is parsed, as Enthusiast's serializer does.
    return start_request.parse_form_input(raw, settings) if isinstance(raw, str) else raw


def _form_files(form: FormData) -> list[UploadFile]:
    # `files[]` is the documented name; the reference server and its web client use `files`.
    values = [*form.getlist("files[]"), *form.getlist("files")]
    if any(not isinstance(value, UploadFile) for value in values):
        raise start_request.field_error("files", "Expected file uploads, got a plain form field.")
    return [value for value in values if isinstance(value, UploadFile)]


@router.post(
    "/agents/{agent_id}/agentic-executions/",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start an execution",
    description=START_DESCRIPTION,
    openapi_extra=START_OPENAPI,
    responses=START_RESPONSES,
)
async def start_execution(
    caller: AgentRequestDep,
    request: Request,
    response: Response,
    session: SessionDep,
    queue: QueueDep,
    settings: SettingsDep,
    extractor: TextExtractorDep,
    idempotency_key: Annotated[
        str | None,
        start_request.idempotency_key_header(
            "Makes retries safe: a repeat within 24 hours answers the first execution "
            "instead of starting another."
        ),
    ] = None,
) -> ExecutionOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    command = functools.partial(
        StartExecution,
        user=caller.user,
        agent=caller.agent,
        origin=Origin.REST,
        idempotency_key=idempotency_key,
    )
    if content_type == "multipart/form-data":
        # Text fields past max_part_size are refused by the parser (400) before they are
        # read whole: at least Starlette's 1 MiB, more if the input limit asks for it.
        max_part_size = max(settings.max_input_bytes + 1, 1024 * 1024)
        async with request.form(
            max_files=settings.max_upload_files * 2, max_part_size=max_part_size
        ) as form:
            raw_input = form.get("input")
            started = await start.start_execution(
                session,
                queue,
                settings,
                command(
                    execution_key=form.get("execution_key"),
                    raw_input=start_request.parse_form_input(
                        raw_input if isinstance(raw_input, str) else None, settings
                    ),
                    limits=start_request.parse_form_limits(form.get("limits"), settings),
                    files=_form_files(form),
                ),
                extractor,
            )
    elif content_type == "application/json" or content_type.endswith("+json"):
        body = await _json_body(request, settings)
        started = await start.start_execution(
            session,
            queue,
            settings,
            command(
                execution_key=body.get("execution_key"),
                raw_input=_json_input(body, settings),
                limits=body.get("limits"),
            ),
        )
    else:
        raise UnsupportedMediaType(
            f"Unsupported media type {content_type or '(none)'!r}: send application/json or "
            "multipart/form-data."
        )
    if started.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return execution_out(started.execution, request.scope.get("root_path", ""))


@router.get(
    "/agentic-executions/{execution_id}/",
    summary="Get an execution",
    description=READ_DESCRIPTION,
    responses=READ_RESPONSES,
)
async def read_execution(caller: ExecutionRequestDep, request: Request) -> ExecutionOut:
    return execution_out(caller.execution, request.scope.get("root_path", ""))


def truncated(execution: ExecutionRow, request: Request) -> ExecutionRow:
    """A list's row with each ``input`` or ``result`` the statement left out (over
    ``list_max_field_bytes``) replaced by ``{"truncated": true, "url": <the execution>}``: a
    marker no valid input has (inputs forbid unknown fields)."""
    if not (execution.input_truncated or execution.result_truncated):
        return execution
    marker = {
        "truncated": True,
        "url": str(request.url_for("read_execution", execution_id=execution.id)),
    }
    return dataclasses.replace(
        execution,
        input=marker if execution.input_truncated else execution.input,
        result=marker if execution.result_truncated else execution.result,
    )


@router.get(
    "/agentic-executions/",
    summary="List executions",
    description=LIST_DESCRIPTION,
    responses=LIST_RESPONSES,
)
async def list_executions(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    agent_id: Annotated[
        RowId | None, EMPTY_IS_NONE, Query(description="Only this agent's executions.")
    ] = None,
    status: Annotated[
        ExecutionStatus | None,
        EMPTY_IS_NONE,
        Query(description="Only executions in this status."),
    ] = None,
    dataset_id: Annotated[
        RowId | None,
        EMPTY_IS_NONE,
        Query(description="Only executions of agents on this dataset."),
    ] = None,
    batch_id: Annotated[
        RowId | None, EMPTY_IS_NONE, Query(description="Only the items of this batch.")
    ] = None,
    schedule_id: Annotated[
        RowId | None,
        EMPTY_IS_NONE,
        Query(description="Only the executions this schedule started."),
    ] = None,
    page: Annotated[
        str | None, Query(description="Page number, from 1, or `last`.", examples=["1"])
    ] = None,
) -> ExecutionPage:
    filters = listing.ExecutionFilters(
        agent_id=agent_id,
        status=status,
        dataset_id=dataset_id,
        batch_id=batch_id,
        schedule_id=schedule_id,
    )
    size = settings.page_size
    if page == "last":
        # As DRF's paginator: the last page (page 1 when there is nothing).
        total = await listing.count_executions_exactly(session, user, filters)
        number = max(1, -(-total // size))
    else:
        number = page_number(page, size)
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
    count = await listing.count_executions(session, user, filters, found)
    executions = found.executions
    root_path = request.scope.get("root_path", "")
    previous = previous_page_url(request, number)
    return ExecutionPage(
        # An estimated count never contradicts the page: it is at least what was seen.
        count=max(count, (number - 1) * size + len(executions)),
        next=str(request.url.include_query_params(page=number + 1)) if found.has_next else None,
        previous=previous,
        results=[execution_out(truncated(e, request), root_path) for e in executions],
    )


@router.post(
    "/agentic-executions/{execution_id}/cancel/",
    summary="Cancel an execution",
    description=CANCEL_DESCRIPTION,
    status_code=status.HTTP_200_OK,
    responses=CANCEL_RESPONSES,
)
async def cancel_execution(
    execution_id: RowId,
    request: Request,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    queue: QueueDep,
    settings: SettingsDep,
) -> ExecutionOut:
    cancellation = await service.cancel_execution(session, queue, settings, user, execution_id)
    if not cancellation.done:
        response.status_code = status.HTTP_202_ACCEPTED
    return execution_out(cancellation.execution, request.scope.get("root_path", ""))

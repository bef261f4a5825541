from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from starlette.datastructures import FormData, UploadFile

from app.agents.dependencies import AgentRequestDep
from app.auth.dependencies import CurrentUser
from app.budgets.limits import Limits, parse_limits
from app.budgets.usage import ExecutionUsage
from app.conversations.schemas import FileOut
from app.core.body_limit import read_body
from app.core.config import Settings
from app.core.dependencies import QueueDep, SessionDep, SettingsDep, TextExtractorDep
from app.core.errors import Invalid, NotFound, UnsupportedMediaType
from app.core.ids import INT32_MAX, RowId
from app.core.json_input import parse_json, parse_json_body
from app.core.openapi import RETRY_AFTER
from app.core.query import EMPTY_IS_NONE, previous_page_url
from app.executions import pages, service, start_request
from app.executions.dependencies import ExecutionRequestDep
from app.executions.models import ExecutionStatus
from app.executions.queue import job_id_for
from app.executions.repository import ExecutionRow
from app.executions.schemas import (
    ExecutionOut,
    ExecutionPage,
    StartExecutionForm,
    StartExecutionRequest,
)

router = APIRouter(tags=["agentic executions"])


def execution_out(execution: ExecutionRow, root_path: str) -> ExecutionOut:
    """One execution as the contract shows it (a row of app.executions.repository, with files)."""
    finished_at = execution["finished_at"]
    return ExecutionOut(
        id=execution["id"],
        agent=execution["agent_id"],
        execution_key=execution["execution_key"],
        conversation=execution["conversation_id"],
        status=ExecutionStatus(execution["status"]),
        input=execution["input"],
        result=execution["result"],
        failure_code=execution["failure_code"],
        failure_explanation=execution["failure_explanation"],
        # The job id is derived from the execution's id (no column holds it since 0022).
        celery_task_id=job_id_for(execution["id"]),
        started_at=execution["started_at"],
        finished_at=finished_at,
        duration_seconds=(
            None if finished_at is None else (finished_at - execution["started_at"]).total_seconds()
        ),
        files=[FileOut.of(**file, root_path=root_path) for file in execution["files"]],
        definition_version=execution["definition_version"],
        usage=ExecutionUsage.of(execution["usage"]),
        limits=None if execution["limits"] is None else Limits.model_validate(execution["limits"]),
        retry_of=execution["retry_of_id"],
        resume_from=execution["resume_from_id"],
        retried_by=execution["retried_by"],
    )


QUOTA_RESPONSE: dict[str, Any] = {
    "description": "A daily quota of yours is used up: the body names it and when it resets "
    "(UTC midnight); `Retry-After` says in how many seconds. Or too many requests with this "
    "token this minute.",
    "headers": RETRY_AFTER,
    "content": {
        "application/json": {
            "example": {
                "detail": "Daily quota max_executions_per_day reached: 100 executions of 100 "
                "today (UTC). It resets at 2026-12-02T00:00:00Z.",
                "quota": "max_executions_per_day",
                "limit": 100,
                "used": 100,
                "resets_at": "2026-12-02T00:00:00Z",
            }
        }
    },
}

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


def _form_limits(raw: Any, settings: Settings) -> Limits | None:
    """``limits`` of a multipart start: a JSON-encoded object, as ``input`` is."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise Invalid({"limits": {"detail": "Expected a JSON-encoded object, got a file."}})
    try:
        parsed = parse_json(raw[: settings.max_input_bytes + 1], settings.max_json_depth)
    except ValueError as exc:
        raise Invalid({"limits": {"detail": str(exc)}}) from None
    return parse_limits(parsed)


def _form_files(form: FormData) -> list[UploadFile]:
    # `files[]` is the documented name; the reference server and its web client use `files`.
    values = [*form.getlist("files[]"), *form.getlist("files")]
    if any(not isinstance(value, UploadFile) for value in values):
        raise start_request.field_error("files", "Expected file uploads, got a plain form field.")
    return [value for value in values if isinstance(value, UploadFile)]


START_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": StartExecutionRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": StartExecutionForm.model_json_schema(by_alias=True),
                "encoding": {"files[]": {"contentType": "application/octet-stream"}},
            },
        },
    }
}


@router.post(
    "/agents/{agent_id}/agentic-executions/",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start an execution",
    description=(
        "Validates `input` against the execution type's schema, stores the execution and "
        "queues it. Send JSON, or `multipart/form-data` with `input` as a JSON-encoded string "
        "and files as `files[]` (agents with file upload only; types are checked by content)."
        "\n\nSend an `Idempotency-Key` header (any string up to 255 characters, e.g. a UUID) "
        "to make retries safe: a repeat of the request with the same key within 24 hours "
        "starts nothing and answers the execution the first one started, in its current "
        "state (with `Idempotent-Replayed: true`). The same key with a different request "
        "(another agent, key, input or files) is refused with 409. Keys are per user."
        "\n\nOptional `limits` (`max_model_requests`, `max_total_tokens`, `max_cost` in USD) "
        "hold the run to a budget, beside the agent's (the stricter of each wins); a run past "
        "one ends `failed` with `budget_exceeded`. In a multipart form, `limits` is a "
        "JSON-encoded string."
    ),
    openapi_extra=START_OPENAPI,
    responses={
        400: {
            "description": "Unknown `execution_key`, invalid `input` (fields named; nested "
            "too deep, or NaN/Infinity), invalid `limits` (fields named, as `input`'s), files "
            "sent to an agent without file upload, or an unsupported file type. A `detail` "
            "string says what is wrong, beside a field's messages as a list of strings "
            "(`execution_key`, `files`); `input` and `limits` name their fields.",
            "content": {
                "application/json": {"example": {"input": {"skus": "Input should be a valid list"}}}
            },
        },
        404: {"description": "No such agent, or not visible to you."},
        409: {
            "description": "The `Idempotency-Key` was used in the last 24 hours for a "
            "different request.",
        },
        413: {
            "description": "A file is larger than the upload limit, or `input` than its "
            "limit (256 KiB of JSON by default).",
            "content": {
                "application/json": {
                    "example": {"input": ["300000 bytes of JSON: the limit is 262144 bytes."]}
                }
            },
        },
        415: {"description": "Neither JSON nor multipart/form-data."},
        429: QUOTA_RESPONSE,
        503: {
            "description": "PostgreSQL is unreachable; or Redis is, and the service is set to "
            "refuse executions then (AGENTRUN_REJECT_WHEN_QUEUE_DOWN). Nothing was stored."
        },
    },
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
        Header(
            alias="Idempotency-Key",
            # Checked below, to answer in the shape of the endpoint's other field errors.
            json_schema_extra={
                "minLength": 1,
                "maxLength": start_request.IDEMPOTENCY_KEY_MAX_LENGTH,
            },
            description="Makes retries safe: a repeat within 24 hours answers the first "
            "execution instead of starting another.",
        ),
    ] = None,
) -> ExecutionOut:
    agent = caller.agent
    if idempotency_key is not None:
        start_request.check_idempotency_key(idempotency_key)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        # Text fields past max_part_size are refused by the parser (400) before they are
        # read whole: at least Starlette's 1 MiB, more if the input limit asks for it.
        max_part_size = max(settings.max_input_bytes + 1, 1024 * 1024)
        async with request.form(
            max_files=settings.max_upload_files * 2, max_part_size=max_part_size
        ) as form:
            key = start_request.execution_key_of(agent, form.get("execution_key"))
            raw_input = form.get("input")
            validated_input = start_request.validate_input(
                agent,
                key,
                start_request.parse_form_input(
                    raw_input if isinstance(raw_input, str) else None, settings
                ),
                settings,
            )
            limits = _form_limits(form.get("limits"), settings)
            files = _form_files(form)
            if files:
                # Extracting a file's text may take seconds: no pooled connection waits for it.
                # The request's transaction so far only read (the token's last use, marked once
                # a minute, is given up): it ends here, and the next statement begins another,
                # which get_session commits.
                await session.close()
            uploads = await start_request.read_uploads(
                agent, files, settings, extractor, caller.user
            )
    elif content_type == "application/json" or content_type.endswith("+json"):
        body = await _json_body(request, settings)
        key = start_request.execution_key_of(agent, body.get("execution_key"))
        validated_input = start_request.validate_input(
            agent, key, _json_input(body, settings), settings
        )
        limits = parse_limits(body.get("limits"))
        uploads = []
    else:
        raise UnsupportedMediaType(
            f"Unsupported media type {content_type or '(none)'!r}: send application/json or "
            "multipart/form-data."
        )
    started = await service.start_execution(
        session,
        queue,
        settings,
        user=caller.user,
        agent=agent,
        execution_key=key,
        validated_input=validated_input,
        uploads=uploads,
        idempotency_key=idempotency_key,
        limits=limits,
    )
    if started.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return execution_out(started.execution, request.scope.get("root_path", ""))


@router.get(
    "/agentic-executions/{execution_id}/",
    summary="Get an execution",
    description="Poll this until `status` is `finished` (read `result`) or `failed` "
    "(read `failure_code` and `failure_explanation`).",
    responses={404: {"description": "No such execution, or not yours."}},
)
async def read_execution(caller: ExecutionRequestDep, request: Request) -> ExecutionOut:
    return execution_out(caller.execution, request.scope.get("root_path", ""))


def truncated(execution: ExecutionRow, request: Request) -> ExecutionRow:
    """A list's row with each ``input`` or ``result`` the statement left out (over
    ``list_max_field_bytes``) replaced by ``{"truncated": true, "url": <the execution>}``: a
    marker no valid input has (inputs forbid unknown fields)."""
    markers = {}
    for field in pages.BOUNDED_FIELDS:
        if execution[f"{field}_truncated"]:
            url = request.url_for("read_execution", execution_id=execution["id"])
            markers[field] = {"truncated": True, "url": str(url)}
    return {**execution, **markers} if markers else execution


def _page_number(raw: str | None, page_size: int) -> int:
    if raw is None:
        return 1
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses; and a page of
    # thousands of digits is refused by int() too. A page whose offset PostgreSQL cannot take
    # (int32) is past any list there will ever be.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(INT32_MAX)):
        raise NotFound("Invalid page.")
    number = int(raw)
    if number < 1 or number * page_size >= INT32_MAX:
        raise NotFound("Invalid page.")
    return number


@router.get(
    "/agentic-executions/",
    summary="List executions",
    description="Your executions (all of them for admins), newest first, 25 a page. An "
    "`input` or `result` over the list's limit (64 KiB of JSON by default) shows as "
    '`{"truncated": true, "url": <the execution>}`; the execution itself shows it whole.',
    responses={
        400: {"description": "A filter has an invalid value (named in the body)."},
        404: {
            "description": "Invalid page.",
            "content": {"application/json": {"example": {"detail": "Invalid page."}}},
        },
    },
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
    page: Annotated[
        str | None, Query(description="Page number, from 1, or `last`.", examples=["1"])
    ] = None,
) -> ExecutionPage:
    filters = pages.ExecutionFilters(agent_id=agent_id, status=status, dataset_id=dataset_id)
    size = settings.page_size
    if page == "last":
        # As DRF's paginator: the last page (page 1 when there is nothing).
        total = await pages.count_executions_exactly(session, user, filters)
        number = max(1, -(-total // size))
    else:
        number = _page_number(page, size)
    found = await pages.list_executions(
        session,
        user,
        filters,
        offset=(number - 1) * size,
        limit=size,
        max_field_bytes=settings.list_max_field_bytes,
    )
    if number > 1 and not found.executions:
        raise NotFound("Invalid page.")
    count = await pages.count_executions(session, user, filters, found)
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
    description=(
        "Ends the execution as `failed` with `failure_code` `cancelled` and the explanation "
        "`Cancelled by <username>.`. A `pending` execution is failed at once (200). An "
        "`in_progress` one is asked to stop (202): its worker aborts the agent run and records "
        "the failure within moments; poll the execution to see it. For the execution's owner "
        "and admins."
    ),
    status_code=status.HTTP_200_OK,
    responses={
        200: {"description": "Was pending: now `failed` with `failure_code` `cancelled`."},
        202: {
            "description": "Running: the worker was asked to stop; `status` is still "
            "`in_progress`.",
            "model": ExecutionOut,
        },
        404: {"description": "No such execution, or not yours."},
        409: {
            "description": "The execution already finished or failed.",
            "content": {"application/json": {"example": {"detail": "Execution already finished."}}},
        },
    },
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

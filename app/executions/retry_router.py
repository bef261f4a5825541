"""POST /api/agentic-executions/{id}/retry/: a new execution like an ended one
(the rules: app.executions.retry)."""

from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.auth.dependencies import CurrentUser
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.ids import RowId
from app.executions import retry, service, start_request
from app.executions.openapi import QUOTA_RESPONSE
from app.executions.schemas import ExecutionOut, execution_out

router = APIRouter(tags=["agentic executions"])


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resume: bool = Field(
        default=False,
        description="Continue from the last good step of the execution instead of from the "
        "start: only for an execution that failed with `runtime_error`.",
    )


@router.post(
    "/agentic-executions/{execution_id}/retry/",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry an execution",
    description=(
        "Starts a new execution with the same agent, `execution_key`, `input`, files and "
        "`limits` as this one, which must have ended (`finished` or `failed`). The new one "
        'shows `retry_of`; this one lists it in `retried_by`. With `{"resume": true}` the '
        "new run continues from the last good step of this one (`resume_from`), which must "
        "have failed with `runtime_error`. As a start: your quotas apply, and an "
        "`Idempotency-Key` makes a repeat answer the execution the first request started."
    ),
    responses={
        400: {"description": "Invalid body (fields named) or `Idempotency-Key`."},
        404: {"description": "No such execution, or not yours."},
        409: {
            "description": "The execution has not ended; `resume` asked of one that did not "
            "fail with `runtime_error`; its agent or execution type is gone; or the "
            "`Idempotency-Key` was used for a different request.",
            "content": {
                "application/json": {
                    "example": {
                        "detail": "Execution 42 failed with budget_exceeded: only an "
                        "execution that failed with runtime_error can be resumed (a resumed "
                        "run would meet the same end). Retry it without resume to run it "
                        "from the start."
                    }
                }
            },
        },
        429: QUOTA_RESPONSE,
        503: {"description": "PostgreSQL (or, if so set, Redis) is unreachable."},
    },
)
async def retry_execution(
    execution_id: RowId,
    request: Request,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    queue: QueueDep,
    settings: SettingsDep,
    body: RetryRequest | None = None,
    idempotency_key: Annotated[
        str | None,
        start_request.idempotency_key_header("Makes retries of this request safe, as for a start."),
    ] = None,
) -> ExecutionOut:
    if idempotency_key is not None:
        # Before the execution is read, as a start checks it before its body.
        start_request.check_idempotency_key(idempotency_key)
    execution = await service.get_visible_execution(session, user, execution_id)
    started = await retry.retry_execution(
        session,
        queue,
        settings,
        user=user,
        execution=execution,
        resume=body is not None and body.resume,
        idempotency_key=idempotency_key,
    )
    if started.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return execution_out(started.execution, request.scope.get("root_path", ""))

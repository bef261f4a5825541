"""The execution a request is about, with the user it comes from."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.auth.dependencies import admitted_user, presented_key, token_header
from app.auth.models import User
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import NotFound
from app.core.ids import RowId
from app.executions.repository import authenticate_for_execution
from app.executions.rows import ExecutionRow


@dataclass(frozen=True)
class ExecutionRequest:
    user: User
    execution: ExecutionRow


async def execution_request(
    execution_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Depends(token_header)],
) -> ExecutionRequest:
    """The authenticated user and the execution of the path, if the user may see it (else 404).

    Answers as ``current_user`` then ``get_visible_execution`` would (401, then 404), from one
    statement instead of two: this is what clients poll.
    """
    found, execution = await authenticate_for_execution(
        session, presented_key(authorization), execution_id
    )
    user = await admitted_user(request, settings, found)
    if execution is None:
        raise NotFound("Execution not found.")
    return ExecutionRequest(user=user, execution=execution)


ExecutionRequestDep = Annotated[ExecutionRequest, Depends(execution_request)]

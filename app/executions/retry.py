"""Retrying an execution: a new one with the same agent, execution key, input, files and
limits, started as a start request is (idempotency key, quotas, enqueue after commit). With
``resume`` (only after a ``runtime_error``), the new execution records the one it continues
from (``resume_from_id``); the worker replays that execution's journal (``workers.run.durability``).
"""

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.agents.service import visible_agents
from app.auth.models import User
from app.core.config import Settings
from app.core.errors import Conflict
from app.definitions.registry import find_definition
from app.executions.models import ExecutionStatus
from app.executions.rows import ExecutionRow
from app.executions.start import Origin, Started, StartExecution, start_execution
from app.executions.start_request import Retry

# Only a run that failed for a reason outside it (provider down, a crash, the time limit) may
# continue where it stopped; any other failure would only repeat itself.
RESUMABLE_FAILURE = "runtime_error"


def _refuse_resume(execution: ExecutionRow) -> None:
    execution_id = execution.id
    if execution.status != ExecutionStatus.FAILED:
        raise Conflict(
            f"Execution {execution_id} {execution.status}: only an execution that failed "
            f"with {RESUMABLE_FAILURE} can be resumed. Retry it without resume to run it again."
        )
    if execution.failure_code != RESUMABLE_FAILURE:
        raise Conflict(
            f"Execution {execution_id} failed with {execution.failure_code}: only an "
            f"execution that failed with {RESUMABLE_FAILURE} can be resumed (a resumed run "
            "would meet the same end). Retry it without resume to run it from the start."
        )


async def retry_execution(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    *,
    user: User,
    execution: ExecutionRow,
    resume: bool,
    idempotency_key: str | None,
) -> Started:
    """Start a new execution as a retry of ``execution`` (visible to ``user``, checked by the
    caller); 409 when it is still running, when ``resume`` is asked of an execution that did
    not fail with ``runtime_error``, or when its agent or type is gone."""
    execution_id = execution.id
    if not execution.status.terminal:
        raise Conflict(
            f"Execution {execution_id} is still {execution.status}: wait for it to end, "
            "or cancel it, before retrying it."
        )
    if resume:
        _refuse_resume(execution)
    agent = await session.scalar(visible_agents(user).where(Agent.id == execution.agent_id))
    if agent is None:
        raise Conflict(
            f"The agent of execution {execution_id} was deleted or is no longer available to "
            "you: it cannot be retried."
        )
    if find_definition(agent.agent_type, execution.execution_key) is None:
        raise Conflict(
            f"The execution type {execution.execution_key!r} is no longer offered by the "
            "agent: it cannot be retried."
        )
    command = StartExecution(
        user=user,
        agent=agent,
        origin=Origin.RETRY,
        execution_key=execution.execution_key,
        raw_input=execution.input,
        limits=execution.limits,
        idempotency_key=idempotency_key,
        retry=Retry(execution, resume),
    )
    return await start_execution(session, queue, settings, command)

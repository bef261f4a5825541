"""Reading and cancelling agentic executions (starting one: app.executions.start)."""

from dataclasses import dataclass

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.config import Settings
from app.core.db import after_commit
from app.core.errors import Conflict, NotFound
from app.executions import repository, transitions
from app.executions.models import (
    ExecutionStatus,
)
from app.executions.queue import (
    abort_execution_job,
)
from app.executions.rows import ExecutionRow


async def get_visible_execution(
    session: AsyncSession, user: User, execution_id: int
) -> ExecutionRow:
    """The execution with its files, if ``user`` owns it or is an admin; else 404."""
    execution = await repository.get_execution(session, execution_id)
    if execution is None or not repository.is_visible_to(user, execution):
        raise NotFound("Execution not found.")
    return execution


@dataclass(frozen=True)
class Cancellation:
    execution: ExecutionRow
    # True when the execution is failed/cancelled already; False when its worker was asked to
    # stop and will record the outcome.
    done: bool


async def cancel_execution(
    session: AsyncSession, queue: ArqRedis, settings: Settings, user: User, execution_id: int
) -> Cancellation:
    """Cancel an execution of ``user`` (any, for admins): ``failed`` with code ``cancelled``.

    A pending one fails at once. A running one is marked ``cancel_requested_at`` and its arq
    job aborted once the request is committed; its worker records the failure. Each step is a
    conditional UPDATE, so a worker moving the execution at the same moment cannot be
    overwritten.

    Where the rest of a cancellation happens: the abort is ``queue.abort_execution_job``; arq
    cancels the run's task (``allow_abort_jobs`` in workers/process/startup.py) and
    workers/run/jobs.py records it through workers/run/outcome.py (``record_cancellation``).
    Should the abort be lost, the heartbeat (``transitions.beat`` returns the flag,
    workers/run/heartbeat.py cancels the task), the conclusion (``transitions``: a requested
    cancellation wins over the outcome) and a restarted attempt (workers/run/claim.py) each find
    ``cancel_requested_at``. The explanation is ``models.cancelled_explanation``.
    """
    await get_visible_execution(session, user, execution_id)
    failed_now = await transitions.cancel_pending(session, execution_id, user.username)
    if not failed_now:
        await transitions.request_cancellation(session, execution_id, user.username)
    execution = await repository.get_execution(session, execution_id)
    assert execution is not None  # executions are never deleted while their agent lives
    if failed_now:
        return Cancellation(execution, done=True)
    if execution.status != ExecutionStatus.IN_PROGRESS:
        raise Conflict("Execution already finished.")
    # Asked now or by an earlier request: abort again (once the request is committed, so the
    # worker finds cancel_requested_at), in case the first abort was lost.
    after_commit(session, lambda: abort_execution_job(queue, settings, execution_id))
    return Cancellation(execution, done=False)

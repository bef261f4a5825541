"""What happens to a user's work when his access is taken away: disabled, or removed from a
dataset. His executions not started are cancelled at once; those running finish unless the
admin asks to cancel them too (then each is cancelled as a single cancel does)."""

from collections.abc import Sequence
from dataclasses import dataclass

from arq.connections import ArqRedis
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.config import Settings
from app.core.db import after_commit
from app.executions import transitions
from app.executions.models import AgenticExecution
from app.executions.queue import abort_execution_job


@dataclass(frozen=True)
class RevokedWork:
    """What a revocation did: the ids of the executions failed ``cancelled`` at once (not
    started), and of those whose worker was asked to stop them."""

    cancelled: Sequence[int]
    stopping: Sequence[int]


async def revoke_user_work(
    session: AsyncSession,
    user: User,
    *,
    by: str,
    dataset_id: int | None = None,
    cancel_running: bool = False,
    queue: ArqRedis | None = None,
    settings: Settings | None = None,
) -> RevokedWork:
    """Stop the work ``user`` has queued, everywhere or on one dataset (``dataset_id``), once
    his access is taken away; ``by`` names who asked (the cancellations say "Cancelled by
    <by>."). The caller owns the transaction and changes the access in it.

    Executions not started fail ``cancelled`` in this transaction. Running ones finish, unless
    ``cancel_running``: then they are asked to stop as a single cancel asks, and their jobs
    aborted after the commit when a ``queue`` (and its ``settings``) is given; without one the
    heartbeat finds the request within ``heartbeat_seconds``.

    The one place revocation is decided: work of other kinds a user owns (a batch's pending
    items, his schedules) joins here, so every door that takes access away (the REST API, the
    console, the command line) stops it without changing.
    """
    if dataset_id is not None and user.is_admin:
        # An admin reaches every dataset, member or not: nothing was taken from him.
        return RevokedWork(cancelled=(), stopping=())
    selected: ColumnElement[bool] = AgenticExecution.user_id == user.id
    if dataset_id is not None:
        selected = selected & (AgenticExecution.dataset_id == dataset_id)
    cancelled = await transitions.cancel_pending(session, selected, by)
    stopping: list[int] = []
    if cancel_running:
        stopping = await transitions.request_cancellation(session, selected, by)
        if stopping and queue is not None and settings is not None:
            aborting, queue_settings = list(stopping), settings

            async def abort_jobs() -> None:
                for execution_id in aborting:
                    await abort_execution_job(queue, queue_settings, execution_id)

            after_commit(session, abort_jobs)
    return RevokedWork(cancelled=cancelled, stopping=stopping)

"""The reconciler (an arq cron job): PostgreSQL is the source of truth, Redis only transport.

An execution whose job Redis lost (enqueue failed, Redis restarted without its data) would
otherwise wait forever. Job ids are deterministic, so enqueueing one whose job is still queued
or running does nothing.
"""

import logging
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import utcnow
from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.queue import enqueue_execution

logger = logging.getLogger(__name__)

# Younger pending executions are normally still on their way to a worker.
PENDING_GRACE = timedelta(seconds=30)
BATCH = 1000


async def reconcile_executions(ctx: dict[str, Any]) -> int:
    """Re-enqueue pending executions older than 30 s, and in_progress ones older than a job can
    run (their worker died and Redis lost the job; ``run_execution`` then retries or fails them
    as worker_lost). Answers how many it handed to the queue; those whose job is still queued
    or running stay as they are."""
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    queue: ArqRedis = ctx["redis"]
    now = utcnow()
    stale_running = now - timedelta(seconds=ctx["job_timeout_seconds"] + 60)
    query = (
        select(AgenticExecution.id)
        .where(
            or_(
                and_(
                    AgenticExecution.status == ExecutionStatus.PENDING.value,
                    AgenticExecution.started_at < now - PENDING_GRACE,
                ),
                and_(
                    AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
                    AgenticExecution.started_at < stale_running,
                ),
            )
        )
        .order_by(AgenticExecution.started_at)
        .limit(BATCH)
    )
    async with sessionmaker() as session:
        execution_ids = (await session.scalars(query)).all()
    enqueued = 0
    for execution_id in execution_ids:
        enqueued += await enqueue_execution(queue, execution_id)
    if execution_ids:
        logger.info("reconciler: %d stale executions enqueued again", enqueued)
    return enqueued

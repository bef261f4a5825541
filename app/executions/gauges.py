"""The gauges /metrics reads from the source of truth (app.core.metrics serves them): the
queue's depth at each scrape (one Redis command), the open executions at most every
AGENTRUN_METRICS_REFRESH_SECONDS (a PostgreSQL query)."""

import contextlib
import time

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.metrics import EXECUTIONS_OPEN, QUEUE_DEPTH, DatabaseGauges
from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.queue import QUEUE_ERRORS


async def _refresh_open_executions(session: AsyncSession) -> None:
    open_statuses = [ExecutionStatus.PENDING.value, ExecutionStatus.IN_PROGRESS.value]
    counts = dict.fromkeys(open_statuses, 0)
    query = (
        select(AgenticExecution.status, func.count())
        .where(AgenticExecution.status.in_(open_statuses))
        .group_by(AgenticExecution.status)
    )
    for status, count in await session.execute(query):
        counts[status] = count
    for name, count in counts.items():
        EXECUTIONS_OPEN.labels(status=name).set(count)


async def refresh_gauges(request: Request, settings: Settings) -> None:
    # Redis down: the scrape still answers, with the last known depth; /readyz says why.
    with contextlib.suppress(*QUEUE_ERRORS):
        QUEUE_DEPTH.set(await request.app.state.queue.zcard(settings.queue_name))
    gauges: DatabaseGauges = request.app.state.database_gauges
    async with gauges.lock:
        if gauges.due():
            async with request.app.state.sessionmaker() as session:
                await _refresh_open_executions(session)
            gauges.refreshed_at = time.monotonic()

"""Prometheus metrics. The API serves ``/metrics``; each worker serves its own on a port."""

import contextlib

from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.queue import QUEUE_ERRORS

# Written by the workers as executions end and models answer.
EXECUTIONS_COMPLETED = Counter(
    "agentrun_executions_completed_total",
    "Executions that reached a terminal status.",
    ["execution_key", "status", "failure_code"],
)
EXECUTION_DURATION = Histogram(
    "agentrun_execution_duration_seconds",
    "From creation to terminal status.",
    ["execution_key", "status"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
MODEL_REQUESTS = Counter(
    "agentrun_model_requests_total", "Requests sent to model providers.", ["model"]
)
MODEL_TOKENS = Counter(
    "agentrun_model_tokens_total", "Tokens used, by direction.", ["model", "direction"]
)

# Refreshed by the API at each scrape, from the source of truth.
QUEUE_DEPTH = Gauge("agentrun_queue_depth", "Jobs waiting in the queue.")
EXECUTIONS_OPEN = Gauge(
    "agentrun_executions_open", "Executions not yet terminal, by status.", ["status"]
)

router = APIRouter(include_in_schema=False)


async def _refresh_gauges(session: AsyncSession, queue: ArqRedis, queue_name: str) -> None:
    # Redis down: the scrape still answers, with the last known depth; /readyz says why.
    with contextlib.suppress(*QUEUE_ERRORS):
        QUEUE_DEPTH.set(await queue.zcard(queue_name))
    open_statuses = [ExecutionStatus.PENDING.value, ExecutionStatus.IN_PROGRESS.value]
    counts = dict.fromkeys(open_statuses, 0)
    query = (
        select(AgenticExecution.status, func.count())
        .where(AgenticExecution.status.in_(open_statuses))
        .group_by(AgenticExecution.status)
    )
    for status, count in await session.execute(query):
        counts[status] = count
    for status, count in counts.items():
        EXECUTIONS_OPEN.labels(status=status).set(count)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    async with request.app.state.sessionmaker() as session:
        await _refresh_gauges(
            session, request.app.state.queue, request.app.state.settings.queue_name
        )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    Instrumentator(excluded_handlers=["/metrics", "/healthz", "/readyz"]).instrument(app)
    app.include_router(router)

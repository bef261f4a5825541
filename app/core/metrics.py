"""Prometheus metrics. The API serves ``/metrics``; each worker serves its own on a port."""

import contextlib
from typing import Any

from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Scope

from app.core.completed_requests import CompletedRequest
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


# The HTTP series of prometheus-fastapi-instrumentator's defaults, same names, labels and
# buckets, so that dashboards keep working.
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "Total number of requests by method, status and handler.",
    ["method", "status", "handler"],
)
HTTP_REQUEST_SIZE = Summary(
    "http_request_size_bytes", "Content length of incoming requests by handler.", ["handler"]
)
HTTP_RESPONSE_SIZE = Summary(
    "http_response_size_bytes", "Content length of outgoing responses by handler.", ["handler"]
)
HTTP_LATENCY_HIGHR = Histogram(
    "http_request_duration_highr_seconds",
    "Latency with many buckets but no API specific labels.",
    buckets=(
        *(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5),
        *(7.5, 10, 30, 60, float("inf")),
    ),
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Latency with only few buckets by handler.",
    ["method", "handler"],
    buckets=(0.1, 0.5, 1, float("inf")),
)
NOT_INSTRUMENTED = frozenset({"/metrics", "/healthz", "/readyz"})


def _handler(scope: Scope) -> str:
    """The path template of the route that served the request ("none" if none matched).

    Read from what the router left in the scope, rather than matched again against every
    route after each request (the instrumentator's way, ~0.3 ms a request). FastAPI records
    the full template of a route of an included router under scope["fastapi"]; a route added
    to the app itself is scope["route"].
    """
    context: Any = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else "none"


def record_http_metrics(completed: CompletedRequest) -> None:
    handler = _handler(completed.scope)
    if handler in NOT_INSTRUMENTED:
        return
    method = completed.scope["method"]
    request_size = next(
        (int(v) for n, v in completed.scope["headers"] if n == b"content-length"), 0
    )
    HTTP_REQUESTS.labels(method, f"{str(completed.status)[0]}xx", handler).inc()
    HTTP_REQUEST_SIZE.labels(handler).observe(request_size)
    HTTP_RESPONSE_SIZE.labels(handler).observe(completed.response_size)
    HTTP_LATENCY_HIGHR.observe(completed.duration_seconds)
    HTTP_LATENCY.labels(method, handler).observe(completed.duration_seconds)


def install_metrics(app: FastAPI) -> None:
    """Serve /metrics (the HTTP series are recorded by ``record_http_metrics``)."""
    app.include_router(router)

"""Prometheus metrics. The API serves ``/metrics`` on its operator port (``metrics_port.py``),
and on the public port only when told to; each worker serves its own on the operator port."""

import asyncio
import contextlib
import hmac
import time
from typing import Any

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
from app.core.config import Settings
from app.core.errors import Unauthenticated
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

# Refreshed by the API from the source of truth: the queue at each scrape (one Redis command),
# the executions at most every AGENTRUN_METRICS_REFRESH_SECONDS (a PostgreSQL query).
QUEUE_DEPTH = Gauge("agentrun_queue_depth", "Jobs waiting in the queue.")
EXECUTIONS_OPEN = Gauge(
    "agentrun_executions_open", "Executions not yet terminal, by status.", ["status"]
)

router = APIRouter(include_in_schema=False)


class DatabaseGauges:
    """When the gauges read from PostgreSQL were last refreshed, so that frequent scrapes
    (several Prometheus servers, a short interval, many API processes) cost the database at
    most one query each ``every_seconds`` per process."""

    def __init__(self, every_seconds: float) -> None:
        self.every_seconds = every_seconds
        self.refreshed_at: float | None = None
        # Concurrent scrapes: one queries, the others wait and reuse its figures.
        self.lock = asyncio.Lock()

    def due(self) -> bool:
        return self.refreshed_at is None or (
            time.monotonic() - self.refreshed_at >= self.every_seconds
        )


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


async def _refresh_gauges(request: Request, settings: Settings) -> None:
    # Redis down: the scrape still answers, with the last known depth; /readyz says why.
    with contextlib.suppress(*QUEUE_ERRORS):
        QUEUE_DEPTH.set(await request.app.state.queue.zcard(settings.queue_name))
    gauges: DatabaseGauges = request.app.state.database_gauges
    async with gauges.lock:
        if gauges.due():
            async with request.app.state.sessionmaker() as session:
                await _refresh_open_executions(session)
            gauges.refreshed_at = time.monotonic()


def _check_scraper(request: Request, settings: Settings) -> None:
    """With AGENTRUN_METRICS_TOKEN set, a scrape must present it (``Authorization: Bearer``,
    as Prometheus's ``authorization`` setting sends it, or ``Token``); else 401."""
    expected = "" if settings.metrics_token is None else settings.metrics_token.get_secret_value()
    if not expected:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "token") or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise Unauthenticated("Metrics need 'Authorization: Bearer <AGENTRUN_METRICS_TOKEN>'.")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    _check_scraper(request, settings)
    await _refresh_gauges(request, settings)
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


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """The gauges' state, and /metrics on the public port if ``metrics_on_api_port`` (the HTTP
    series are recorded by ``record_http_metrics``)."""
    app.state.database_gauges = DatabaseGauges(settings.metrics_refresh_seconds)
    if settings.metrics_on_api_port:
        app.include_router(router)

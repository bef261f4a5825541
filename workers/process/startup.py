"""The arq worker: ``agentrun worker`` (on uvloop, with metrics and the service's logging), or
``arq workers.arq_settings.WorkerSettings``.

One worker process runs many executions at once (they wait on model providers, not on the
CPU): ``max_jobs`` is AGENTRUN_WORKER_CONCURRENCY. A worker is woken when a job is enqueued
(``workers.process.execution_worker``) and polls every AGENTRUN_WORKER_POLL_DELAY_SECONDS besides.

Beside the jobs, two tasks live from startup to shutdown: the heartbeat of the executions this
worker runs (``workers.run.heartbeat``) and the reconciler (``workers.background.reconciler``).

Faults:
- Redis unreachable: every Redis call waits for it to come back (retried with backoff, without
  end), so the worker outlives a Redis restart; running executions go on meanwhile (they need
  PostgreSQL and the provider, not Redis), and the reconciler re-enqueues what Redis lost.
- SIGTERM: arq stops taking jobs and lets running ones finish for up to the shutdown grace
  (``job_completion_wait``); those still running then are cancelled and handed back
  (``workers.run.jobs``): another worker runs them as their next attempt.
- SIGKILL: the heartbeat stops; the reconciler has the executions run again.
"""

import asyncio
import contextlib
import dataclasses
import logging
import math
from typing import Any

import uvloop
from arq import func
from arq.connections import ArqRedis, RedisSettings
from prometheus_client import start_http_server
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.conversations.extraction import ExtractionLimits
from app.conversations.extraction_process import TextExtractor
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.garbage_collection import settle_after_startup
from app.core.logging import configure_logging
from app.core.memory import keep_large_buffers_returnable
from app.core.tracing import start as start_tracing
from app.definitions.registry import all_definitions
from app.executions.queue import RUN_EXECUTION_JOB, redis_settings
from app.webhooks.stored_secrets import refuse_to_start_without_keys
from workers.background.reconciler import keep_reconciling
from workers.background.schedule_ticks import keep_ticking_schedules
from workers.background.webhook_delivery import keep_delivering_webhooks
from workers.process.execution_worker import ExecutionWorker
from workers.run.agent_builder import AgentCache
from workers.run.heartbeat import Runs, keep_beating
from workers.run.jobs import run_execution
from workers.run.loop import SUMMARY_TIMEOUT_SECONDS
from workers.run.model_clients import ModelFactory
from workers.run.state import STATE_KEY, WorkerState, state_of

logger = logging.getLogger(__name__)

# Nothing reads arq's job results (the execution row holds the outcome): not storing them saves
# pickling each result and a Redis write per job.
KEEP_RESULT_SECONDS = 0
# Beyond the execution's own limit: the failure summary and writing the outcome.
RUN_MARGIN_SECONDS = SUMMARY_TIMEOUT_SECONDS + 60
# Writes that may each be retried for AGENTRUN_WORKER_DATABASE_RETRY_SECONDS outside the run's
# own time limit: the claim, the end of the trace, the outcome.
RETRIED_WRITES = 3
# The claim decides how often an execution is tried (workers.run.claim.MAX_ATTEMPTS); arq's own
# count (of pickups, including duplicates that do nothing) must never stop it first.
ARQ_MAX_TRIES = 100
# Redis unreachable: try again after 0.25 s, 0.5 s, ... then every 5 s, for as long as it takes.
REDIS_RETRY = Retry(ExponentialBackoff(cap=5.0, base=0.25), retries=-1)


def longest_run_seconds(settings: Settings) -> float:
    """The longest an execution may run, with its failure summary and final write."""
    limits = [d.timeout_seconds for d in all_definitions() if d.timeout_seconds is not None]
    return max([settings.execution_timeout_seconds, *limits]) + RUN_MARGIN_SECONDS


def job_timeout_seconds(settings: Settings) -> float:
    """Comfortably above the longest run and the database retries, so that the loop's own
    timeout, which fails the execution cleanly, always comes first."""
    retries = RETRIED_WRITES * settings.worker_database_retry_seconds
    return longest_run_seconds(settings) + retries


def shutdown_grace_seconds(settings: Settings) -> float:
    if settings.worker_shutdown_grace_seconds is not None:
        return settings.worker_shutdown_grace_seconds
    return longest_run_seconds(settings)


def worker_redis_settings(settings: Settings) -> RedisSettings:
    """The queue's Redis settings, waiting out an unreachable Redis instead of failing (arq's
    worker dies on the first connection error otherwise)."""
    return dataclasses.replace(
        redis_settings(settings),
        retry=REDIS_RETRY,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


async def startup(ctx: dict[str, Any]) -> None:
    """arq's on_startup: the worker's state, in ``ctx`` (``workers.run.state``), and its tasks."""
    settings: Settings = ctx["settings"]
    engine = create_engine(settings)
    # None unless an OTEL_ variable asks for traces (app/core/tracing.py). The heartbeat's
    # engine is left out: its beats belong to no execution's trace.
    tracing = start_tracing(settings, "agentrun-worker")
    if tracing is not None:
        tracing.instrument_engine(engine)
    # One connection now: a database that cannot be reached stops the worker at startup, and
    # the first job does not wait for a connection to be opened.
    async with engine.connect():
        pass
    # Stored webhook secrets it could not open: stop here, naming the setting.
    await refuse_to_start_without_keys(create_sessionmaker(engine), settings.keyring)
    # The heartbeat's own connection: runs holding every connection of the pool (500 runs, 20
    # connections) must not keep it from beating, or their executions are taken for orphans
    # and run twice. Its statement is cancelled after one heartbeat interval: a beat never
    # hangs longer than that, and the next one is tried soon after (workers.run.heartbeat).
    heartbeat_engine = create_engine(
        settings, pool_size=1, statement_timeout_seconds=settings.heartbeat_seconds
    )
    state = WorkerState(
        settings=settings,
        job_timeout_seconds=ctx.get("job_timeout_seconds", job_timeout_seconds(settings)),
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        heartbeat_engine=heartbeat_engine,
        heartbeat_sessionmaker=create_sessionmaker(heartbeat_engine),
        models=ModelFactory(settings),
        agents=AgentCache(),
        runs=Runs(),
        extractor=TextExtractor(
            ExtractionLimits.from_settings(settings), settings.extraction_concurrency
        ),
        model_override=ctx.get("model_override"),
    )
    ctx[STATE_KEY] = state
    if settings.stale_after_seconds < 2 * settings.heartbeat_seconds:
        logger.warning(
            "AGENTRUN_STALE_AFTER_SECONDS (%s) is under twice AGENTRUN_HEARTBEAT_SECONDS (%s): "
            "a busy worker's executions may be taken for orphans",
            settings.stale_after_seconds,
            settings.heartbeat_seconds,
        )
    beating = keep_beating(state.heartbeat_sessionmaker, state.runs, settings)
    state.background.append(asyncio.create_task(beating, name="heartbeat"))
    queue: ArqRedis | None = ctx.get("redis")
    if queue is not None:  # arq's pool; absent when tests drive jobs without a worker
        reconciling = keep_reconciling(
            state.sessionmaker, queue, state.runs, settings, state.job_timeout_seconds
        )
        state.background.append(asyncio.create_task(reconciling, name="reconciler"))
        webhooks = keep_delivering_webhooks(state.sessionmaker, settings)
        state.background.append(asyncio.create_task(webhooks, name="webhooks"))
        ticking = keep_ticking_schedules(state.sessionmaker, queue, settings)
        state.background.append(asyncio.create_task(ticking, name="schedules"))
    settle_after_startup()
    keep_large_buffers_returnable()


async def shutdown(ctx: dict[str, Any]) -> None:
    if STATE_KEY not in ctx:
        # Stopped (Ctrl-C, SIGTERM) before start-up finished: no state to close, and the
        # process is on its way out.
        return
    state = state_of(ctx)
    for task in state.background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    state.agents.clear()
    state.extractor.close()
    await state.models.aclose()
    await state.heartbeat_engine.dispose()
    await state.engine.dispose()


def worker_settings(settings: Settings, **extra_ctx: Any) -> dict[str, Any]:
    """arq Worker keyword arguments for ``settings``; ``extra_ctx`` is read at startup (tests
    pass ``model_override=...``)."""
    timeout = job_timeout_seconds(settings)
    return {
        "functions": [
            func(run_execution, name=RUN_EXECUTION_JOB, timeout=timeout, max_tries=ARQ_MAX_TRIES)
        ],
        "redis_settings": worker_redis_settings(settings),
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_concurrency,
        # How long ExecutionWorker waits for a wake-up between polls (arq's own Worker, run by
        # `arq workers.arq_settings.WorkerSettings`, polls this often and is never woken).
        "poll_delay": settings.worker_poll_delay_seconds,
        # Only waiting jobs are in the queue (ExecutionWorker): a poll needs no more ids than
        # the worker has slots.
        "queue_read_limit": settings.worker_concurrency,
        "job_timeout": timeout,
        "keep_result": KEEP_RESULT_SECONDS,
        # SIGTERM: stop taking jobs, let the running ones finish for this long (arq wants int).
        "job_completion_wait": math.ceil(shutdown_grace_seconds(settings)),
        # Cancelling a running execution aborts its job: arq cancels the task, and
        # run_execution records the cancellation.
        "allow_abort_jobs": True,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings, "job_timeout_seconds": timeout, **extra_ctx},
    }


def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM (what ``agentrun worker`` calls)."""
    configure_logging(settings)
    try:
        # Port 0 turns the endpoint off (start_http_server would pick a random port).
        if settings.metrics_port:
            start_http_server(settings.metrics_port)
    except OSError as exc:
        # Two workers on one host: the second runs without its own metrics endpoint.
        logger.warning("metrics port %s unavailable: %s", settings.metrics_port, exc)
    # arq runs on the current event loop; uvloop's, as uvicorn gives the API.
    asyncio.set_event_loop(uvloop.new_event_loop())
    ExecutionWorker(**worker_settings(settings)).run()

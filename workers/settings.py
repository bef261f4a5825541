"""The arq worker: ``arq workers.settings.WorkerSettings`` or ``agentrun worker``.

One worker process runs many executions at once (they wait on model providers, not on the
CPU): ``max_jobs`` is AGENTRUN_WORKER_CONCURRENCY. Polling every 10 ms picks a job up within
tens of milliseconds of its enqueueing.
"""

import logging
from typing import Any

from arq import cron, func
from arq.worker import run_worker as run_arq_worker
from prometheus_client import start_http_server

from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.logging import configure_logging
from app.definitions.registry import all_definitions
from app.executions.queue import RUN_EXECUTION_JOB, redis_settings
from workers.jobs import run_execution
from workers.loop import SUMMARY_TIMEOUT_SECONDS
from workers.models import ModelFactory
from workers.reconciler import reconcile_executions

logger = logging.getLogger(__name__)

# Results are only read by tests and operators; the execution row holds the outcome.
KEEP_RESULT_SECONDS = 60
# Beyond the execution's own limit: the failure summary and writing the outcome.
JOB_TIMEOUT_MARGIN_SECONDS = SUMMARY_TIMEOUT_SECONDS + 60


def job_timeout_seconds(settings: Settings) -> float:
    """Comfortably above the longest execution time limit, so that the loop's own timeout,
    which fails the execution cleanly, always comes first."""
    limits = [d.timeout_seconds for d in all_definitions() if d.timeout_seconds is not None]
    return max([settings.execution_timeout_seconds, *limits]) + JOB_TIMEOUT_MARGIN_SECONDS


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["engine"] = create_engine(settings)
    # One connection now: a database that cannot be reached stops the worker at startup, and
    # the first job does not wait for a connection to be opened.
    async with ctx["engine"].connect():
        pass
    ctx["sessionmaker"] = create_sessionmaker(ctx["engine"])
    ctx["models"] = ModelFactory(settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["models"].aclose()
    await ctx["engine"].dispose()


def worker_settings(settings: Settings, **extra_ctx: Any) -> dict[str, Any]:
    """arq Worker keyword arguments for ``settings``; ``extra_ctx`` lands in every job's ctx
    (tests pass ``model_override=...``)."""
    timeout = job_timeout_seconds(settings)
    return {
        "functions": [func(run_execution, name=RUN_EXECUTION_JOB, timeout=timeout)],
        "cron_jobs": [
            cron(
                reconcile_executions,
                second={0, 30},
                run_at_startup=True,
                timeout=60,
            )
        ],
        "redis_settings": redis_settings(settings),
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_concurrency,
        "poll_delay": settings.worker_poll_delay_seconds,
        "job_timeout": timeout,
        "keep_result": KEEP_RESULT_SECONDS,
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
        start_http_server(settings.worker_metrics_port)
    except OSError as exc:
        # Two workers on one host: the second runs without its own metrics endpoint.
        logger.warning("metrics port %s unavailable: %s", settings.worker_metrics_port, exc)
    run_arq_worker(worker_settings(settings))


def __getattr__(name: str) -> Any:
    # ``arq workers.settings.WorkerSettings``: the settings are read from the environment only
    # when arq asks, not whenever this module is imported.
    if name == "WorkerSettings":
        return worker_settings(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

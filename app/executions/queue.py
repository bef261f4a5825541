"""Handing executions to the workers through arq. PostgreSQL stays the source of truth."""

import logging

from arq.connections import ArqRedis, RedisSettings, create_pool

from app.core.config import Settings

logger = logging.getLogger(__name__)

RUN_EXECUTION_JOB = "run_execution"


def job_id_for(execution_id: int) -> str:
    # Deterministic, so that enqueueing the same execution twice runs it once.
    return f"execution:{execution_id}"


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


async def create_queue(settings: Settings) -> ArqRedis:
    return await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)


async def enqueue_execution(queue: ArqRedis, execution_id: int) -> bool:
    """Enqueue the run; False when Redis cannot be reached (the reconciler enqueues it later)."""
    try:
        await queue.enqueue_job(RUN_EXECUTION_JOB, execution_id, _job_id=job_id_for(execution_id))
    except (OSError, ConnectionError, TimeoutError) as exc:
        logger.warning("could not enqueue execution %s: %s", execution_id, exc)
        return False
    return True

"""The reconciler: PostgreSQL is the source of truth, Redis only transport.

Every worker runs it every ``reconcile_seconds`` (a task of its own, beside the jobs). It finds
the executions no worker is taking care of and makes their jobs runnable again:

- ``pending`` and released to the workers (``dispatched_at``) longer than
  ``stale_after_seconds`` ago, whose job Redis lost (enqueue failed
  while Redis was down, Redis restarted without its data) or whose job a dead worker had just
  picked up;
- ``in_progress`` whose heartbeat is stale (their worker died) or NULL (their worker handed
  them back).

A worker takes the jobs it runs out of the queue (workers.process.execution_worker), so a killed
worker's job is gone from the queue; it is enqueued again, its leftovers (which would make arq
refuse the deterministic id, and the in-progress key a killed worker leaves for the whole job
timeout) cleared in the same atomic step, as a job Redis lost is. A job still in the queue but
marked in progress (a worker of the previous release, which left running jobs in the queue,
was killed) is freed by deleting the mark. Either wakes a worker. ``run_execution``
then runs it as the next attempt, or fails it as ``worker_lost``.

Several reconcilers (one per worker) may act at once, or on an execution a worker is claiming
this very moment: a job picked twice is harmless, since claiming an execution is a
conditional UPDATE that one worker wins, and a live worker's execution (fresh heartbeat) is
never claimed by another.
"""

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import cast

from arq.connections import ArqRedis
from arq.constants import (
    expires_extra_ms,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database_errors import is_database_outage
from app.executions.dispatch import released
from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.queue import (
    QUEUE_ERRORS,
    RUN_EXECUTION_JOB,
    WAKE_TOKENS_KEPT,
    job_id_for,
    wake_key,
    wake_workers,
)
from app.executions.transitions import orphaned
from workers.run.heartbeat import Runs

logger = logging.getLogger(__name__)

BATCH = 1000
# Redis calls wait for Redis to come back (workers.process.startup); one pass gives up after
# this long.
PASS_TIMEOUT_SECONDS = 60.0
# For callers without worker settings.
DEFAULT_STALE_AFTER_SECONDS: float = Settings.model_fields["stale_after_seconds"].default

# Enqueue a lost job unless it is queued meanwhile, in one step, so that two reconcilers doing
# this at once leave one job. KEYS: queue, job, result, retry, in-progress keys. ARGV: job id,
# serialized job, its expiry (ms), its score (enqueue time, ms).
REQUEUE_SCRIPT = """
if redis.call('zscore', KEYS[1], ARGV[1]) then return 0 end
redis.call('del', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('psetex', KEYS[2], ARGV[3], ARGV[2])
redis.call('zadd', KEYS[1], ARGV[4], ARGV[1])
redis.call('lpush', KEYS[6], '1')
redis.call('ltrim', KEYS[6], 0, ARGV[5] - 1)
return 1
"""


async def reconcile_executions(
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    *,
    stale_after: float = DEFAULT_STALE_AFTER_SECONDS,
    job_timeout_seconds: float | None = None,
    runs: Runs | None = None,
) -> int:
    """One pass; answers how many executions it handed to the workers again.
    ``job_timeout_seconds``: arq's, which says how long its in-progress mark lasts; ``runs``:
    this worker's (their heartbeats' recent trouble is taken into account)."""
    stuck = [
        # Released to the workers that long ago (app/executions/dispatch.py); those waiting
        # for the dispatcher have no job to lose.
        and_(
            released(),
            AgenticExecution.dispatched_at < func.now() - timedelta(seconds=stale_after),
        )
    ]
    # Right after PostgreSQL was unreachable every heartbeat is stale, the live ones too: give
    # their workers time to beat again before believing it.
    if runs is None or not runs.recently_troubled(within=stale_after):
        stuck.append(
            and_(
                AgenticExecution.status == ExecutionStatus.IN_PROGRESS,
                orphaned(stale_after),
            )
        )
    query = (
        select(AgenticExecution.id, AgenticExecution.status)
        .where(or_(*stuck))
        .order_by(AgenticExecution.started_at)
        .limit(BATCH)
    )
    try:
        async with sessionmaker() as session:
            found = (await session.execute(query)).all()
    except Exception as exc:
        if runs is not None and is_database_outage(exc):
            runs.note_database_trouble()
        raise
    if not found:
        return 0
    # arq's in-progress mark lasts the job timeout + 10 s from when a worker picked the job.
    marked_for = None if job_timeout_seconds is None else (job_timeout_seconds + 10) * 1000
    handed = await _make_runnable(queue, [row.id for row in found], marked_for, stale_after)
    if handed:
        logger.info(
            "reconciler: %d of %d stuck executions handed to the workers again (%s)",
            len(handed),
            len(found),
            ", ".join(f"#{execution_id}" for execution_id in handed[:20]),
        )
    return len(handed)


async def _make_runnable(
    queue: ArqRedis, execution_ids: list[int], marked_for_ms: float | None, stale_after: float
) -> list[int]:
    queue_name = queue.default_queue_name
    async with queue.pipeline(transaction=False) as pipe:
        for execution_id in execution_ids:
            job_id = job_id_for(execution_id)
            pipe.zscore(queue_name, job_id)
            pipe.pttl(in_progress_key_prefix + job_id)
        answers = await pipe.execute()
    handed: list[int] = []
    for index, execution_id in enumerate(execution_ids):
        job_id = job_id_for(execution_id)
        queued, marked_ms_left = answers[2 * index], answers[2 * index + 1]
        marked = marked_ms_left != -2
        # A mark younger than the staleness is a worker picking the job up this very moment
        # (the execution read as stuck just before): left alone.
        age_ms = None if marked_for_ms is None else marked_for_ms - marked_ms_left
        if marked and age_ms is not None and marked_ms_left >= 0 and age_ms < stale_after * 1000:
            continue
        if queued is not None:
            # Still queued: waiting for a free worker (nothing to do), or held by a worker of
            # the previous release that is gone (it left its running jobs in the queue).
            if not marked:
                continue
            if await queue.delete(in_progress_key_prefix + job_id):
                await wake_workers(queue, queue_name)
                handed.append(execution_id)
            continue
        # Gone from the queue: lost by Redis, or started by a worker that is gone (a worker
        # takes the jobs it runs out of the queue).
        if await _requeue(queue, execution_id):
            handed.append(execution_id)
    return handed


async def _requeue(queue: ArqRedis, execution_id: int) -> bool:
    """Enqueue the execution's lost job, as ``enqueue_execution`` would, clearing what is left
    of it (a job key without its queue entry, or a recent result, makes arq's enqueue refuse
    the same id)."""
    job_id = job_id_for(execution_id)
    now = timestamp_ms()
    job = serialize_job(RUN_EXECUTION_JOB, (execution_id,), {}, None, now)
    keys = (
        [queue.default_queue_name]
        + [
            prefix + job_id
            for prefix in (
                job_key_prefix,
                result_key_prefix,
                retry_key_prefix,
                in_progress_key_prefix,
            )
        ]
        + [wake_key(queue.default_queue_name)]
    )
    try:
        arguments: list[str | bytes] = [
            *(job_id, job, str(expires_extra_ms), str(now), str(WAKE_TOKENS_KEPT))
        ]
        done = await cast(
            Awaitable[int],
            queue.eval(REQUEUE_SCRIPT, len(keys), *keys, *arguments),  # type: ignore[arg-type]
        )
    except QUEUE_ERRORS as exc:
        logger.warning("reconciler: could not enqueue execution %s: %s", execution_id, exc)
        return False
    return bool(done)


async def keep_reconciling(
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    runs: Runs,
    settings: Settings,
    job_timeout_seconds: float,
) -> None:
    """The worker's reconciler task, from startup to shutdown; the first pass at once."""
    while True:
        try:
            async with asyncio.timeout(PASS_TIMEOUT_SECONDS):
                await reconcile_executions(
                    sessionmaker,
                    queue,
                    stale_after=settings.stale_after_seconds,
                    job_timeout_seconds=job_timeout_seconds,
                    runs=runs,
                )
        except Exception as exc:
            logger.warning("reconciler: pass failed (%s: %s)", type(exc).__name__, exc)
        await asyncio.sleep(settings.reconcile_seconds)

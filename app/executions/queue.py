"""Handing executions to the workers through arq. PostgreSQL stays the source of truth."""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Job, serialize_job
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from app.core.config import Settings
from app.core.redis_scripts import LuaScript

logger = logging.getLogger(__name__)

RUN_EXECUTION_JOB = "run_execution"
# A Redis that does not answer within this long counts as down: the API answers without it
# rather than hanging a client's request.
QUEUE_TIMEOUT_SECONDS = 2.0
# Everything a Redis client call raises when the server is unreachable or misbehaving.
QUEUE_ERRORS = (RedisError, OSError)


def job_id_for(execution_id: int) -> str:
    # Deterministic, so that enqueueing the same execution twice runs it once.
    return f"execution:{execution_id}"


def wake_key(queue_name: str) -> str:
    """The list a worker waits on between polls (workers.process.execution_worker): one token pushed
    per enqueued job wakes one waiting worker."""
    return f"{queue_name}:wake"


# Tokens nobody took (every worker busy) are kept up to this many: enough to wake a fleet's
# workers when they free up, without a backlog of polls that would find nothing.
WAKE_TOKENS_KEPT = 64

# KEYS: the wake list; ARGV: how many tokens to keep.
_WAKE = LuaScript(
    """
    redis.call('LPUSH', KEYS[1], '1')
    redis.call('LTRIM', KEYS[1], 0, ARGV[1] - 1)
    """
)


async def wake_workers(redis: ArqRedis, queue_name: str) -> None:
    """Wake a worker waiting for jobs of ``queue_name`` (after a job was queued otherwise than
    by ``enqueue_execution``)."""
    await _WAKE(redis, [wake_key(queue_name)], [WAKE_TOKENS_KEPT])


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


async def create_queue(settings: Settings) -> ArqRedis:
    """A client for the queue that connects on first use, not now.

    arq's ``create_pool`` pings Redis and fails when it is down; the API must start anyway
    (executions are stored and the reconciler enqueues them once Redis is back).
    """
    queue: ArqRedis = ArqRedis.from_url(
        settings.redis_url,
        socket_connect_timeout=QUEUE_TIMEOUT_SECONDS,
        socket_timeout=QUEUE_TIMEOUT_SECONDS,
    )
    queue.default_queue_name = settings.queue_name
    return queue


async def queue_reachable(queue: ArqRedis) -> bool:
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT_SECONDS):
            return bool(await queue.ping())
    except QUEUE_ERRORS:  # TimeoutError is an OSError
        return False


# What arq's ``enqueue_job`` does, in one round trip instead of four (WATCH, EXISTS, then
# MULTI/PSETEX/ZADD/EXEC on a connection held for the WATCH): a job whose key or result exists
# is not enqueued again. A script runs atomically, as the WATCH made arq's steps. It also
# pushes a token on the wake list, which a waiting worker is blocked on (``wake_key``).
_ENQUEUE = LuaScript(
    """
    if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
    redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
    redis.call('LPUSH', KEYS[4], '1')
    redis.call('LTRIM', KEYS[4], 0, ARGV[5] - 1)
    return 1
    """
)


async def enqueue_execution(queue: ArqRedis, execution_id: int) -> bool:
    """Enqueue the run; False when Redis cannot be reached (the reconciler enqueues it later).

    A job of the same id already queued, running or finished moments ago is left alone.
    """
    job_id = job_id_for(execution_id)
    now = timestamp_ms()
    job = serialize_job(
        RUN_EXECUTION_JOB, (execution_id,), {}, None, now, serializer=queue.job_serializer
    )
    queue_name = queue.default_queue_name
    keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue_name, wake_key(queue_name)]
    try:
        await _ENQUEUE(queue, keys, [queue.expires_extra_ms, job, now, job_id, WAKE_TOKENS_KEPT])
    except QUEUE_ERRORS as exc:
        logger.warning("could not enqueue execution %s: %s", execution_id, exc)
        return False
    return True


# ``_ENQUEUE`` for many jobs at once (a batch's items). KEYS: the queue, the wake list; ARGV:
# the job and result key prefixes, the expiry, the time, how many wake tokens to keep, then
# each job's id and serialized job. A job whose key or result exists is not enqueued again.
_ENQUEUE_MANY = LuaScript(
    """
    local queued = 0
    for index = 6, #ARGV, 2 do
        local job_id = ARGV[index]
        if redis.call('EXISTS', ARGV[1] .. job_id, ARGV[2] .. job_id) == 0 then
            redis.call('PSETEX', ARGV[1] .. job_id, ARGV[3], ARGV[index + 1])
            redis.call('ZADD', KEYS[1], ARGV[4], job_id)
            queued = queued + 1
        end
    end
    for _ = 1, math.min(queued, tonumber(ARGV[5])) do
        redis.call('LPUSH', KEYS[2], '1')
    end
    redis.call('LTRIM', KEYS[2], 0, ARGV[5] - 1)
    return queued
    """
)
# Jobs a script call: Redis runs nothing else while a script runs, so a long batch is sent in
# slices (each a few milliseconds of Redis), all in one pipeline (one round trip).
ENQUEUE_SLICE = 500


async def enqueue_executions(queue: ArqRedis, execution_ids: Sequence[int]) -> bool:
    """``enqueue_execution`` for many executions in one round trip; False when Redis cannot be
    reached (the reconciler enqueues them later)."""
    now = timestamp_ms()
    queue_name = queue.default_queue_name
    keys = [queue_name, wake_key(queue_name)]
    head: list[str | bytes | int] = [
        job_key_prefix,
        result_key_prefix,
        queue.expires_extra_ms,
        now,
        WAKE_TOKENS_KEPT,
    ]
    try:
        # The script is loaded once; EVALSHA in a pipeline cannot fall back to EVAL.
        await queue.script_load(_ENQUEUE_MANY.source)
        async with queue.pipeline(transaction=False) as pipeline:
            for start in range(0, len(execution_ids), ENQUEUE_SLICE):
                jobs: list[str | bytes | int] = []
                for execution_id in execution_ids[start : start + ENQUEUE_SLICE]:
                    job = serialize_job(
                        RUN_EXECUTION_JOB,
                        (execution_id,),
                        {},
                        None,
                        now,
                        serializer=queue.job_serializer,
                    )
                    jobs += [job_id_for(execution_id), job]
                arguments: list[Any] = [*keys, *head, *jobs]
                pipeline.evalsha(_ENQUEUE_MANY.sha, len(keys), *arguments)
            await pipeline.execute()
    except QUEUE_ERRORS as exc:
        logger.warning("could not enqueue %s executions: %s", len(execution_ids), exc)
        return False
    return True


async def abort_execution_job(queue: ArqRedis, settings: Settings, execution_id: int) -> None:
    """Ask the worker running the execution to cancel its task, without waiting for it.

    Best effort: with Redis down the request is lost, and the worker finds the execution's
    ``cancel_requested_at`` instead.
    """
    job = Job(job_id_for(execution_id), redis=queue, _queue_name=settings.queue_name)
    try:
        # timeout=0: record the abort, and give up at once waiting for the job to end (arq
        # raises TimeoutError). The worker cancels the task on its next poll, which a wake-up
        # brings forward (at once when one worker runs; else a waiting worker polls for
        # nothing and the one running the job sees it within its poll delay).
        with contextlib.suppress(TimeoutError):
            await job.abort(timeout=0, poll_delay=0)
        await wake_workers(queue, settings.queue_name)
    except QUEUE_ERRORS as exc:
        if not isinstance(exc, TimeoutError):
            logger.warning("could not abort the job of execution %s: %s", execution_id, exc)

"""Enqueueing an execution's job in one script: what arq's enqueue_job would store, once."""

from arq.connections import ArqRedis
from arq.constants import result_key_prefix
from arq.jobs import Job, JobStatus

from app.core.config import Settings
from app.executions.queue import RUN_EXECUTION_JOB, enqueue_execution, job_id_for


async def test_an_enqueued_execution_is_a_job_arq_reads(
    queue: ArqRedis, settings: Settings
) -> None:
    assert await enqueue_execution(queue, 7)

    job = Job(job_id_for(7), queue, _queue_name=settings.queue_name)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None
    assert (info.function, info.args, info.kwargs) == (RUN_EXECUTION_JOB, (7,), {})
    assert [j.job_id for j in await queue.queued_jobs()] == [job_id_for(7)]
    # arq's own expiry of a job key: a day after it was due.
    ttl_ms = await queue.pttl(f"arq:job:{job_id_for(7)}")
    assert 86_000_000 < ttl_ms <= 86_400_000


async def test_enqueueing_twice_queues_one_job(queue: ArqRedis, settings: Settings) -> None:
    await enqueue_execution(queue, 7)
    await enqueue_execution(queue, 7)
    await enqueue_execution(queue, 8)

    assert await queue.zcard(settings.queue_name) == 2


async def test_a_job_with_a_result_is_not_enqueued_again(
    queue: ArqRedis, settings: Settings
) -> None:
    await queue.set(result_key_prefix + job_id_for(7), b"done")

    await enqueue_execution(queue, 7)

    assert await queue.zcard(settings.queue_name) == 0


async def test_a_script_redis_forgot_is_sent_again(queue: ArqRedis, settings: Settings) -> None:
    await enqueue_execution(queue, 7)
    await queue.script_flush()

    await enqueue_execution(queue, 8)

    assert await queue.zcard(settings.queue_name) == 2

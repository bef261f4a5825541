"""How workers find jobs (workers/process/execution_worker.py): woken by the enqueue, running jobs
out of the queue, so that a fleet runs every execution it has slots for."""

import asyncio
import contextlib
import time

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import Job, JobStatus
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.queue import abort_execution_job, enqueue_execution, job_id_for, wake_key
from tests.factories import Factory
from tests.mock_openai import MockOpenAI
from tests.worker.harness import reload
from tests.worker.test_cancellation import request_cancel
from tests.worker.test_worker_process import arq_worker, task, until_terminal
from workers.process.execution_worker import ExecutionWorker
from workers.run.jobs import run_execution

# Longer than any test: a job these workers run was not found by their poll.
NEVER = 3600.0


async def waiting_for_a_wake_up(queue: ArqRedis, workers: int = 1, within: float = 10) -> None:
    """Until ``workers`` clients are blocked on the queue's wake list (BLPOP)."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        clients = await queue.client_list()
        if sum(client.get("cmd") == "blpop" for client in clients) >= workers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker is not waiting for a wake-up")


def only_woken(settings: Settings) -> Settings:
    """Settings of a worker that polls only once, at its start: it finds jobs by wake-ups."""
    return settings.model_copy(update={"worker_poll_delay_seconds": NEVER})


async def test_a_job_enqueued_while_the_worker_waits_runs_without_a_poll(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    execution = await task(factory)
    model = TestModel(call_tools=[], custom_output_args={"hi": 1})
    async with arq_worker(only_woken(settings), model):
        await waiting_for_a_wake_up(queue)
        assert await enqueue_execution(queue, execution.id)
        done = await until_terminal(sessionmaker, execution.id, within=30)

    assert (done.status, done.result) == ("finished", {"hi": 1})


async def test_each_of_many_jobs_enqueued_one_by_one_wakes_a_worker(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    executions = [await task(factory) for _ in range(5)]
    model = TestModel(call_tools=[], custom_output_args={"hi": 1})
    async with arq_worker(only_woken(settings), model):
        for execution in executions:
            await waiting_for_a_wake_up(queue)
            assert await enqueue_execution(queue, execution.id)
            done = await until_terminal(sessionmaker, execution.id, within=30)
            assert done.status == "finished"


async def test_a_running_job_leaves_the_queue_and_its_job_is_gone_when_it_ends(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with MockOpenAI(latency=1.0) as server:
        execution = await task(factory, name="openai:gpt-4o-mini", base_url=server.url)
        job_id = job_id_for(execution.id)
        async with arq_worker(settings):
            assert await enqueue_execution(queue, execution.id)
            while not server.requests:
                await asyncio.sleep(0.005)
            # Waiting on its model: out of the queue, in progress as arq reports it.
            assert await queue.zscore(settings.queue_name, job_id) is None
            assert await queue.zcard(settings.queue_name) == 0
            job = Job(job_id, queue, _queue_name=settings.queue_name)
            assert await job.status() == JobStatus.in_progress
            done = await until_terminal(sessionmaker, execution.id)
            await asyncio.sleep(0.1)  # arq's bookkeeping after the job returned

    assert done.status == "finished"
    assert not await queue.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)


async def test_a_fleet_runs_more_executions_than_one_poll_reads(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Two workers of 3 slots, each reading at most 3 ids a poll. Were running jobs left in the
    # queue (arq's way), the second worker would read the first one's 3 and start nothing.
    slots, count = 3, 5
    async with MockOpenAI(latency=3.0) as server:
        owner = await factory.account()
        agent = await factory.agent(
            await factory.dataset(owner),
            agent_type="structured-task",
            model_settings={"name": "openai:gpt-4o-mini", "base_url": server.url},
        )
        executions = [
            await factory.execution(agent, owner, input={"instructions": f"Task {n}."})
            for n in range(count)
        ]
        fleet = settings.model_copy(update={"worker_concurrency": slots})
        async with arq_worker(fleet) as first:
            assert first.queue_read_limit == slots
            for execution in executions[:slots]:
                await enqueue_execution(queue, execution.id)
            while len(server.requests) < slots:
                await asyncio.sleep(0.01)
            async with arq_worker(fleet):
                for execution in executions[slots:]:
                    await enqueue_execution(queue, execution.id)
                deadline = time.perf_counter() + 10
                while len(server.requests) < count and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
                # All of them waiting on the model at once.
                in_flight = len(server.requests)
                statuses = {(await reload(sessionmaker, e.id)).status for e in executions}
                done = [await until_terminal(sessionmaker, e.id, within=20) for e in executions]

    assert in_flight == count
    assert statuses == {"in_progress"}
    assert {d.status for d in done} == {"finished"}


async def test_a_job_another_worker_marked_in_progress_is_left_to_it(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A worker of the previous release runs the job: it leaves it in the queue, marked.
    execution = await task(factory)
    in_progress = in_progress_key_prefix + job_id_for(execution.id)
    await queue.psetex(in_progress, 60_000, b"1")
    async with arq_worker(settings, TestModel(call_tools=[], custom_output_args={"hi": 1})):
        assert await enqueue_execution(queue, execution.id)
        await asyncio.sleep(0.3)
        assert (await reload(sessionmaker, execution.id)).status == "pending"
        assert await queue.zscore(settings.queue_name, job_id_for(execution.id)) is not None
        # That worker ends without finishing the job (its key expires): this one takes it.
        await queue.delete(in_progress)
        done = await until_terminal(sessionmaker, execution.id)

    assert (done.status, done.result) == ("finished", {"hi": 1})


async def test_a_job_handed_back_goes_back_to_the_queue_with_its_score_and_wakes_a_worker(
    settings: Settings, queue: ArqRedis
) -> None:
    # What arq's run_job does for a job to be run again (a worker stopping cancels it, or it
    # raised Retry): finish_job without finishing. This worker took it out of the queue.
    worker = ExecutionWorker(
        functions=[run_execution],
        queue_name=settings.queue_name,
        redis_pool=queue,
        handle_signals=False,
    )
    job_id = job_id_for(41)
    worker.scores[job_id] = 1234
    await queue.psetex(in_progress_key_prefix + job_id, 60_000, b"1")

    await worker.finish_job(job_id, False, None, None, False, None, None)

    assert await queue.zscore(settings.queue_name, job_id) == 1234
    assert not await queue.exists(in_progress_key_prefix + job_id)
    assert await queue.llen(wake_key(settings.queue_name)) == 1
    # Deferred (arq's Retry(defer=...)): arq adds to the score it finds.
    await worker.finish_job(job_id, False, None, None, False, 5000, None)
    assert await queue.zscore(settings.queue_name, job_id) == 6234


async def test_an_abort_wakes_the_worker_running_the_job(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    execution = await task(factory)
    model_called = asyncio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        model_called.set()
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    # Neither its poll nor its heartbeat (which also finds a cancel request) comes in time.
    woken = only_woken(settings).model_copy(
        update={"heartbeat_seconds": NEVER, "stale_after_seconds": 2 * NEVER}
    )
    async with arq_worker(woken, FunctionModel(slow)):
        assert await enqueue_execution(queue, execution.id)
        await asyncio.wait_for(model_called.wait(), 10)
        await request_cancel(sessionmaker, execution.id)
        await abort_execution_job(queue, woken, execution.id)
        done = await until_terminal(sessionmaker, execution.id, within=30)

    assert (done.status, done.failure_code) == ("failed", "cancelled")


async def redis_commands(redis: ArqRedis, seconds: float) -> list[str]:
    """What Redis runs on the queue's database for ``seconds`` (MONITOR), one string each."""
    database = redis.connection_pool.connection_kwargs.get("db", 0)
    commands: list[str] = []
    async with redis.monitor() as monitor:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    command = await monitor.next_command()
                    if command["db"] == database:
                        commands.append(command["command"])
    return commands


async def test_an_idle_worker_waits_between_polls_instead_of_polling_in_a_loop(
    settings: Settings, queue: ArqRedis
) -> None:
    # arq's own loop is given no poll delay (it would sleep it even after a wake-up); the
    # worker's wait for a wake-up is what spaces its polls.
    async with arq_worker(only_woken(settings)):
        await waiting_for_a_wake_up(queue)
        commands = await redis_commands(queue, 0.5)

    # Its first poll may fall in the window: the BLPOP seen may be another suite's worker on
    # the same Redis server (CLIENT LIST is server-wide). A worker polling in a loop would
    # show hundreds in half a second.
    polls = [c for c in commands if c.startswith(f"ZRANGEBYSCORE {settings.queue_name} ")]
    assert len(polls) <= 1, polls

"""The heartbeat and the reconciler: orphans are run again, live executions never disturbed."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import utcnow
from app.executions.models import AgenticExecution
from app.executions.queue import enqueue_execution, job_id_for
from tests.factories import Factory
from tests.faults.conftest import mock_agent, requests_per_label, terminal, until
from tests.mock_openai import MockOpenAI
from tests.worker.harness import Worker, answer, reload, roles, trace
from tests.worker.test_cancellation import request_cancel
from tests.worker.test_worker_process import arq_worker


async def structured_task(factory: Factory, model_url: str, **fields: Any) -> AgenticExecution:
    owner, agent = await mock_agent(factory, model_url)
    return await factory.execution(agent, owner, input={"instructions": "Say hi."}, **fields)


async def beat_age(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int, age: timedelta | None
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecution)
            .where(AgenticExecution.id == execution_id)
            .values(heartbeat_at=None if age is None else utcnow() - age)
        )


@contextlib.asynccontextmanager
async def reconciling(worker: Worker, queue: ArqRedis, every: float) -> AsyncIterator[list[int]]:
    """Another worker's reconciler, running beside the test; yields what each pass handed."""
    passes: list[int] = []

    async def loop() -> None:
        while True:
            passes.append(await worker.reconcile(queue))
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield passes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_slow_execution_with_a_live_heartbeat_is_never_taken_over(
    fast_settings: Settings,
    worker: Worker,
    factory: Factory,
    queue: ArqRedis,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The model answers after twice the staleness; two reconcilers watch all along.
    mock_model.latency = 2 * fast_settings.stale_after_seconds
    execution = await structured_task(factory, mock_model.url)
    async with (
        arq_worker(fast_settings),
        reconciling(worker, queue, every=0.1) as passes,
    ):
        await enqueue_execution(queue, execution.id)
        [done] = await until(sessionmaker, [execution.id], terminal, within=15)

    assert (done.status, done.attempts) == ("finished", 1)
    assert len(mock_model.requests) == 1
    assert len(passes) > 20
    assert set(passes) == {0}


async def test_two_reconcilers_at_once_hand_a_dead_workers_execution_to_one_worker(
    fast_settings: Settings,
    worker: Worker,
    factory: Factory,
    queue: ArqRedis,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # As a killed worker leaves it: in_progress, a stale heartbeat, its job queued and marked
    # in progress (arq would skip it for the whole job timeout).
    execution = await structured_task(factory, mock_model.url, status="in_progress", attempts=1)
    await beat_age(sessionmaker, execution.id, timedelta(minutes=1))
    await enqueue_execution(queue, execution.id)
    marker = in_progress_key_prefix + job_id_for(execution.id)
    # arq's mark lasts the job timeout + 10 s from the pickup, a minute ago.
    await queue.set(marker, b"1", px=int((worker.state.job_timeout_seconds + 10 - 60) * 1000))

    handed = await asyncio.gather(worker.reconcile(queue), worker.reconcile(queue))

    assert sorted(handed) == [0, 1]
    assert not await queue.exists(marker)
    assert len(await queue.queued_jobs()) == 1
    async with arq_worker(fast_settings):
        [done] = await until(sessionmaker, [execution.id], terminal, within=10)
    assert (done.status, done.attempts) == ("finished", 2)
    assert list(requests_per_label(mock_model).values()) == [1]


async def test_a_job_a_worker_is_picking_up_right_now_is_left_alone(
    worker: Worker, factory: Factory, queue: ArqRedis, mock_model: MockOpenAI
) -> None:
    # Pending for a while (a backlog), and picked up this very moment: arq's mark is fresh.
    execution = await structured_task(factory, mock_model.url)
    async with worker.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecution)
            .where(AgenticExecution.id == execution.id)
            .values(
                started_at=utcnow() - timedelta(minutes=1),
                dispatched_at=utcnow() - timedelta(minutes=1),
            )
        )
    await enqueue_execution(queue, execution.id)
    marker = in_progress_key_prefix + job_id_for(execution.id)
    await queue.set(marker, b"1", px=int((worker.state.job_timeout_seconds + 10) * 1000))

    assert await worker.reconcile(queue) == 0
    assert await queue.exists(marker)


async def test_a_lost_job_enqueued_by_two_reconcilers_at_once_runs_once(
    fast_settings: Settings,
    worker: Worker,
    factory: Factory,
    queue: ArqRedis,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    orphan = await structured_task(factory, mock_model.url, status="in_progress", attempts=1)
    await beat_age(sessionmaker, orphan.id, timedelta(minutes=1))
    waiting = await structured_task(factory, mock_model.url)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecution)
            .where(AgenticExecution.id == waiting.id)
            .values(
                started_at=utcnow() - timedelta(minutes=1),
                dispatched_at=utcnow() - timedelta(minutes=1),
            )
        )

    await asyncio.gather(*(worker.reconcile(queue) for _ in range(3)))

    assert sorted(job.job_id for job in await queue.queued_jobs()) == sorted(
        [job_id_for(orphan.id), job_id_for(waiting.id)]
    )
    async with arq_worker(fast_settings):
        rows = await until(sessionmaker, [orphan.id, waiting.id], terminal, within=10)
    assert [(row.status, row.attempts) for row in rows] == [("finished", 2), ("finished", 1)]
    assert len(mock_model.requests) == 2


async def test_an_execution_whose_worker_is_alive_is_not_claimed_by_a_duplicate_job(
    worker: Worker, factory: Factory, mock_model: MockOpenAI
) -> None:
    execution = await structured_task(factory, mock_model.url, status="in_progress", attempts=1)
    await beat_age(worker.state.sessionmaker, execution.id, timedelta(seconds=1))

    assert await worker.run(execution.id) == "running elsewhere"

    done = await reload(worker.state.sessionmaker, execution.id)
    assert (done.status, done.attempts) == ("in_progress", 1)
    assert mock_model.requests == []


async def test_a_run_taken_over_elsewhere_stops_without_writing_its_outcome(
    worker: Worker, factory: Factory, mock_model: MockOpenAI
) -> None:
    sessionmaker = worker.state.sessionmaker
    execution = await structured_task(factory, mock_model.url)

    async def taken_over_meanwhile(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # This worker lost PostgreSQL for a while; another one took the execution over.
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(AgenticExecution)
                .where(AgenticExecution.id == execution.id)
                .values(attempts=2, heartbeat_at=utcnow())
            )
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    status = await asyncio.wait_for(
        worker.run(execution.id, FunctionModel(taken_over_meanwhile)), 5
    )

    assert status == "superseded"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.attempts, done.finished_at) == ("in_progress", 2, None)
    assert "failure" not in roles(await trace(sessionmaker, execution.conversation_id))


async def test_a_cancel_whose_abort_was_lost_stops_the_run_within_a_heartbeat(
    worker: Worker, factory: Factory, mock_model: MockOpenAI
) -> None:
    sessionmaker = worker.state.sessionmaker
    execution = await structured_task(factory, mock_model.url)

    async def cancelled_meanwhile(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # The user cancels; Redis loses the abort, so only PostgreSQL knows.
        await request_cancel(sessionmaker, execution.id, by="carol")
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    status = await asyncio.wait_for(worker.run(execution.id, FunctionModel(cancelled_meanwhile)), 5)

    assert status == "failed"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.failure_explanation) == (
        "failed",
        "cancelled",
        "Cancelled by carol.",
    )


async def test_a_finished_execution_stays_as_it_is_when_a_late_job_runs(
    worker: Worker, factory: Factory, mock_model: MockOpenAI
) -> None:
    execution = await structured_task(factory, mock_model.url)
    first = await worker.run(execution.id, FunctionModel(answer_hi))
    second = await worker.run(execution.id, FunctionModel(answer_hi))

    assert (first, second) == ("finished", "already finished")
    done = await reload(worker.state.sessionmaker, execution.id)
    assert (done.status, done.attempts) == ("finished", 1)


def answer_hi(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    step = answer({"hi": True})
    assert callable(step)
    return step(messages, info)


async def test_right_after_postgresql_was_unreachable_stale_heartbeats_are_not_believed(
    worker: Worker, factory: Factory, queue: ArqRedis, mock_model: MockOpenAI
) -> None:
    # Every heartbeat is stale after an outage, the live workers' too: they get time to beat.
    sessionmaker = worker.state.sessionmaker
    execution = await structured_task(factory, mock_model.url, status="in_progress", attempts=1)
    await beat_age(sessionmaker, execution.id, timedelta(minutes=1))
    worker.state.runs.note_database_trouble()

    assert await worker.reconcile(queue) == 0

    worker.state.runs.database_trouble_at -= worker.state.settings.stale_after_seconds
    assert await worker.reconcile(queue) == 1

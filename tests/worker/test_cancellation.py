"""Cancelling a running execution: the worker stops it and records ``cancelled``."""

import asyncio
from datetime import timedelta

from arq.connections import ArqRedis
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import utcnow
from app.executions.models import AgenticExecution
from app.executions.queue import abort_execution_job, enqueue_execution
from tests.factories import Factory
from tests.worker.harness import Script, Worker, reload, roles, trace
from tests.worker.test_worker_process import arq_worker, until_terminal


async def task(factory: Factory, **fields: object) -> AgenticExecution:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    return await factory.execution(
        agent, owner, input={"instructions": "Say hi.", "output_schema": None}, **fields
    )


async def request_cancel(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int, by: str = "alice"
) -> None:
    # What POST .../cancel/ stores for a running execution.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecution)
            .where(AgenticExecution.id == execution_id)
            .values(cancel_requested_at=utcnow(), cancel_requested_by=by)
        )


async def test_aborted_job_fails_the_execution_as_cancelled(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    execution = await task(factory)
    model_called = asyncio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        model_called.set()
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    async with arq_worker(settings, FunctionModel(slow)):
        await enqueue_execution(queue, execution.id)
        await asyncio.wait_for(model_called.wait(), 5)
        await request_cancel(sessionmaker, execution.id)
        await abort_execution_job(queue, settings, execution.id)
        done = await until_terminal(sessionmaker, execution.id)

    assert (done.status, done.failure_code, done.failure_explanation) == (
        "failed",
        "cancelled",
        "Cancelled by alice.",
    )
    assert done.finished_at is not None
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages)[-1] == "failure"
    assert messages[-1].content == "Cancelled by alice."


async def test_cancel_whose_abort_was_lost_still_wins_over_the_result(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await task(factory)

    async def cancelled_while_answering(
        messages: list[ModelMessage], info: AgentInfo
    ) -> ModelResponse:
        # The user cancels now, and Redis loses the abort: the task runs on.
        await request_cancel(sessionmaker, execution.id)
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"hi": True})])

    status = await worker.run(execution.id, FunctionModel(cancelled_while_answering))

    assert status == "failed"
    done = await reload(sessionmaker, execution.id)
    assert (done.failure_code, done.failure_explanation, done.result) == (
        "cancelled",
        "Cancelled by alice.",
        None,
    )
    assert done.usage is not None
    assert done.usage["requests"] == 1


async def test_execution_cancelled_while_its_worker_was_gone_is_not_run_again(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await task(
        factory,
        status="in_progress",
        attempts=1,
        cancel_requested_at=utcnow() - timedelta(minutes=1),
        cancel_requested_by="bob",
    )
    script = Script()

    assert await worker.run(execution.id, script) == "cancelled"

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.failure_explanation) == (
        "failed",
        "cancelled",
        "Cancelled by bob.",
    )
    assert script.requests == []


async def test_cancel_committed_while_the_outcome_waits_for_the_row_still_wins(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The cancel request's transaction holds the row while the worker's final UPDATE arrives:
    # the UPDATE waits, then decides on the row as the request left it.
    execution = await task(factory)
    lock_taken = asyncio.Event()

    async def cancel_holding_the_row() -> None:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(AgenticExecution)
                .where(AgenticExecution.id == execution.id)
                .values(cancel_requested_at=utcnow(), cancel_requested_by="carol")
            )
            lock_taken.set()
            while not await _someone_waits_for_a_lock(sessionmaker):
                await asyncio.sleep(0.01)

    canceller: asyncio.Task[None] | None = None

    async def answer_while_a_cancel_is_on_its_way(
        messages: list[ModelMessage], info: AgentInfo
    ) -> ModelResponse:
        nonlocal canceller
        canceller = asyncio.create_task(cancel_holding_the_row())
        await lock_taken.wait()
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"hi": True})])

    status = await asyncio.wait_for(
        worker.run(execution.id, FunctionModel(answer_while_a_cancel_is_on_its_way)), 10
    )
    assert canceller is not None
    await canceller

    assert status == "failed"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.failure_explanation, done.result) == (
        "failed",
        "cancelled",
        "Cancelled by carol.",
        None,
    )
    # The trace's end was written with the outcome.
    assert roles(await trace(sessionmaker, execution.conversation_id))[-2:] == [
        "tool_result",
        "result",
    ]


async def _someone_waits_for_a_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)

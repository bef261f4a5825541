"""A hung statement cannot hold a connection for ever, nor starve the heartbeat.

Every connection carries a statement timeout (AGENTRUN_DATABASE_STATEMENT_TIMEOUT_SECONDS), and
the worker's heartbeat beats on a connection of its own: runs holding every connection of the
pool must not make their executions look orphaned (taken over and run twice).
"""

import asyncio
import contextlib
import time
from datetime import datetime

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import create_engine
from app.executions.models import AgenticExecution
from app.main import create_app
from tests.factories import Factory
from tests.worker.harness import Worker, answer, worker_context


async def test_a_statement_past_the_timeout_is_cancelled_and_its_connection_stays_usable(
    settings: Settings,
) -> None:
    engine = create_engine(settings.model_copy(update={"database_statement_timeout_seconds": 0.5}))
    try:
        async with engine.connect() as connection:
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="canceling statement due to statement timeout"):
                await connection.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 3
            await connection.rollback()
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_a_request_stuck_behind_a_lock_answers_503_after_the_timeout(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution = await factory.execution(agent, owner, input={"instructions": "Hi."})
    app = create_app(settings.model_copy(update={"database_statement_timeout_seconds": 1.0}))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
        sessionmaker() as holder,
        holder.begin(),
    ):
        # Another transaction holds the execution's row (a hung statement, a forgotten lock).
        await holder.execute(
            select(AgenticExecution.id).where(AgenticExecution.id == execution.id).with_for_update()
        )
        response = await asyncio.wait_for(
            client.post(f"/api/agentic-executions/{execution.id}/cancel/", headers=owner.headers),
            10,
        )

    assert response.status_code == 503
    assert response.json()["detail"] == "Database unavailable, try again shortly."


async def heartbeat_at(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int
) -> datetime | None:
    async with sessionmaker() as session:
        return await session.scalar(
            select(AgenticExecution.heartbeat_at).where(AgenticExecution.id == execution_id)
        )


async def test_the_heartbeat_beats_while_the_runs_hold_every_connection_of_the_pool(
    fast_settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = fast_settings.model_copy(update={"database_pool_size": 2})
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution = await factory.execution(
        agent, owner, input={"instructions": "Hi.", "output_schema": None}
    )
    asked, may_answer = asyncio.Event(), asyncio.Event()

    async def slow_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        asked.set()
        await may_answer.wait()
        step = answer({"hi": True})
        assert callable(step)
        response: ModelResponse = step(messages, info)
        return response

    async with worker_context(settings) as ctx:
        run = asyncio.create_task(Worker(ctx).run(execution.id, FunctionModel(slow_model)))
        await asyncio.wait_for(asked.wait(), 10)
        async with contextlib.AsyncExitStack() as held:
            # Every connection of the runs' pool busy, as with 500 runs on 20 connections.
            for _ in range(settings.database_pool_size):
                connection = await held.enter_async_context(ctx.engine.connect())
                await connection.execute(text("SELECT 1"))
            before = await heartbeat_at(sessionmaker, execution.id)
            await asyncio.sleep(4 * settings.heartbeat_seconds)
            after = await heartbeat_at(sessionmaker, execution.id)
        may_answer.set()
        status = await asyncio.wait_for(run, 10)

    assert before is not None
    assert after is not None
    assert after > before
    assert status == "finished"

"""AGENTRUN_DATABASE_PREPARED_STATEMENTS=false, for PgBouncer in transaction mode
(deploy/README.md): the same runs, no statement cached on a connection, the worker's
one-statement writes each in a transaction of their own."""

import asyncio

from arq.connections import ArqRedis
from pydantic_ai.models.test import TestModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.queue import enqueue_execution
from tests.factories import Factory, client_with_settings
from tests.worker.test_worker_process import arq_worker, task, until_terminal


async def test_a_worker_without_prepared_statements_runs_executions_to_their_end(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    pooled = settings.model_copy(update={"database_prepared_statements": False})
    executions = [await task(factory) for _ in range(3)]
    async with arq_worker(pooled, TestModel(call_tools=[], custom_output_args={"hi": 1})):
        for execution in executions:
            assert await enqueue_execution(queue, execution.id)
        done = [await until_terminal(sessionmaker, e.id, within=30) for e in executions]

    assert [(d.status, d.result, d.attempts) for d in done] == [("finished", {"hi": 1}, 1)] * 3


async def test_without_prepared_statements_concurrent_reads_all_answer(
    settings: Settings, factory: Factory
) -> None:
    # A GET's statements run in a transaction then: outside one, behind PgBouncer in
    # transaction mode, a statement's prepare and its execution may reach two server
    # connections (most of these answered 500 there, with TEST_POSTGRES_URL at PgBouncer).
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution = await factory.execution(agent, owner)
    async with client_with_settings(settings, database_prepared_statements=False) as client:
        responses = await asyncio.gather(
            *(
                client.get(url, headers=owner.headers)
                for _ in range(50)
                for url in ("/api/agentic-executions/", f"/api/agentic-executions/{execution.id}/")
            )
        )

    assert {response.status_code for response in responses} == {200}
    assert {response.json()["count"] for response in responses[::2]} == {1}

"""AGENTRUN_DATABASE_PREPARED_STATEMENTS=false, for PgBouncer in transaction mode
(deploy/README.md): the same runs, no statement cached on a connection, the worker's
one-statement writes each in a transaction of their own."""

from arq.connections import ArqRedis
from pydantic_ai.models.test import TestModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.queue import enqueue_execution
from tests.factories import Factory
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

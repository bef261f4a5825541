"""The worker's one-statement writes (claim, trace, outcome) when their connection goes bad:
lost with the server, or interrupted mid-statement."""

import asyncio
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.models import AgenticExecution
from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, reload, roles, trace, worker_context
from workers.run.claim import claim_pending
from workers.run.database import in_one_statement


async def structured_task(factory: Factory) -> AgenticExecution:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution: AgenticExecution = await factory.execution(
        agent, owner, input={"instructions": "Describe Ada.", "output_schema": None}
    )
    return execution


async def backend_pids(engine: AsyncEngine, count: int) -> list[int]:
    """Fill the pool with ``count`` connections; their server processes."""
    connections = [await engine.connect() for _ in range(count)]
    try:
        return [await c.scalar(text("SELECT pg_backend_pid()")) for c in connections]
    finally:
        for connection in connections:
            await connection.close()


async def until_gone(session: AsyncSession, pids: list[int]) -> None:
    for _ in range(200):
        alive = await session.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
        )
        await session.rollback()
        if alive == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"server processes {pids} still there")


async def test_after_a_restart_ends_every_pooled_connection_a_run_waits_one_retry_not_one_each(
    settings: Settings,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    execution = await structured_task(factory)
    async with worker_context(settings.model_copy(update={"database_pool_size": 4})) as ctx:
        # A busy worker's pool, whose connections the server then ends (as a restart does).
        pids = await backend_pids(ctx.engine, 4)
        await session.execute(
            text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
            {"pids": pids},
        )
        await session.commit()
        await until_gone(session, pids)

        started = asyncio.get_running_loop().time()
        status = await Worker(ctx).run(execution.id, Script(answer({"name": "Ada", "age": 36})))
        elapsed = asyncio.get_running_loop().time() - started

    assert status == "finished"
    # The claim fails once, then the whole pool is replaced: one 0.5 s pause, not one per lost
    # connection (0.5 + 1 + 2 + 4 s).
    assert elapsed < 1.5
    assert roles(await trace(sessionmaker, execution.conversation_id))[-1] == "result"


async def waiting_for_a_lock(session: AsyncSession, statement_start: str) -> int:
    """The server process of the statement (starting so) that waits for a lock."""
    for _ in range(200):
        pid = await session.scalar(
            text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE :start"
            ),
            {"start": f"{statement_start}%"},
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError("no statement waits for the lock")


async def test_an_interrupted_claim_is_not_made_later_and_its_connection_is_not_reused(
    settings: Settings,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    execution = await structured_task(factory)
    async with worker_context(settings.model_copy(update={"database_pool_size": 1})) as ctx:
        claim: asyncio.Task[Any]
        async with sessionmaker() as holder, sessionmaker() as observer:
            async with holder.begin():
                # The row is locked: the claim's UPDATE waits. The job is then aborted.
                await holder.execute(
                    select(AgenticExecution.id)
                    .where(AgenticExecution.id == execution.id)
                    .with_for_update()
                )
                claim = asyncio.create_task(
                    in_one_statement(
                        ctx.sessionmaker,
                        lambda connection: claim_pending(connection, execution.id),
                        retry_for=0,
                        what="claiming",
                    )
                )
                pid = await waiting_for_a_lock(observer, "UPDATE agentic_executions")
                claim.cancel()
                await asyncio.gather(claim, return_exceptions=True)
            # The lock is gone: an interrupted UPDATE still pending on a pooled connection
            # would claim the execution now. Its connection was closed instead.
            await until_gone(observer, [pid])

        assert (await reload(sessionmaker, execution.id)).status == "pending"
        # The pool's only connection was replaced: the next run goes ahead.
        status = await Worker(ctx).run(execution.id, Script(answer({"name": "Ada", "age": 36})))

    assert claim.cancelled()
    assert status == "finished"

"""Many status changes in one statement (a revocation, a batch's cancel) log and announce what a
single change does: each execution's status events in order, after its transaction's trace
entries, and each batch touched finished once its last item ended, also when its last two end
at once in two transactions."""

import asyncio
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.batches.models import AgenticExecutionBatch
from app.conversations.models import Message
from app.events.models import ExecutionEvent
from app.executions import transitions
from app.executions.models import AgenticExecution
from tests.batches.test_batches import KEY, owner_and_agent, submit
from tests.factories import Factory


async def logged(session: AsyncSession, execution_id: int) -> list[tuple[int, str, Any]]:
    """An execution's events: sequence, type, and the status (a status event's) or the
    message id (a trace event's)."""
    rows = await session.execute(
        select(ExecutionEvent.sequence, ExecutionEvent.type, ExecutionEvent.payload,
               ExecutionEvent.message_id)
        .where(ExecutionEvent.execution_id == execution_id)
        .order_by(ExecutionEvent.sequence)
    )  # fmt: skip
    return [
        (sequence, kind, payload["status"] if payload is not None else message_id)
        for sequence, kind, payload, message_id in rows
    ]


async def item_ids(
    client: AsyncClient, batch: dict[str, Any], headers: dict[str, str]
) -> list[int]:
    listed = await client.get(batch["executions"], headers=headers)
    return sorted(execution["id"] for execution in listed.json()["results"])


async def test_one_update_cancelling_a_users_pending_work_logs_each_and_ends_each_batch(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    bob, bobs_agent_id = await owner_and_agent(factory, username="bob")
    first = await submit(client, agent_id, alice, 3)
    second = await submit(client, agent_id, alice, 2)
    bobs = await submit(client, bobs_agent_id, bob, 2)
    single = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        json={"execution_key": KEY},
        headers=alice.headers,
    )
    running = (await item_ids(client, first, alice.headers))[0]
    async with sessionmaker() as session, session.begin():
        assert await transitions.mark_in_progress(session, running)

    # A revocation's statement: every pending execution of alice's, in two batches and none.
    async with sessionmaker() as session, session.begin():
        cancelled = await transitions.cancel_pending(
            session, AgenticExecution.user_id == alice.user.id, "admin"
        )

    expected = [
        *(await item_ids(client, first, alice.headers))[1:],
        *await item_ids(client, second, alice.headers),
        single.json()["id"],
    ]
    assert sorted(cancelled) == sorted(expected)
    async with sessionmaker() as session:
        for execution_id in cancelled:
            assert await logged(session, execution_id) == [
                (1, "status", "pending"), (2, "status", "failed"),
            ]  # fmt: skip
        assert await logged(session, running) == [
            (1, "status", "pending"), (2, "status", "in_progress"),
        ]  # fmt: skip
        for execution_id in await item_ids(client, bobs, bob.headers):
            assert await logged(session, execution_id) == [(1, "status", "pending")]
        rows = await session.execute(
            select(AgenticExecutionBatch.id, AgenticExecutionBatch.finished_at)
        )
        finished = {row.id: row.finished_at for row in rows}
    # The batch with an item still running goes on; the other ended with its last item.
    assert finished[first["id"]] is None
    assert finished[second["id"]] is not None
    assert finished[bobs["id"]] is None


async def test_statuses_are_logged_at_commit_after_the_trace_entries_of_their_transaction(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice = await factory.account(username="alice")
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)

    # Two status changes and two trace entries, interleaved, in one transaction.
    async with sessionmaker() as session, session.begin():
        assert await transitions.mark_in_progress(session, execution.id)
        first = Message(conversation_id=execution.conversation_id, role="assistant", content="a")
        session.add(first)
        await session.flush()
        assert await transitions.mark_failed(session, execution.id, "runtime_error", "Boom.")
        second = Message(conversation_id=execution.conversation_id, role="assistant", content="b")
        session.add(second)
        await session.flush()

    async with sessionmaker() as session:
        assert await logged(session, execution.id) == [
            (1, "status", "pending"),
            (2, "trace", first.id),
            (3, "trace", second.id),
            (4, "status", "in_progress"),
            (5, "status", "failed"),
        ]


async def test_the_last_two_items_ending_at_once_in_two_transactions_end_the_batch(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    batch = await submit(client, agent_id, alice, 2)
    ids = await item_ids(client, batch, alice.headers)
    async with sessionmaker() as session, session.begin():
        for execution_id in ids:
            assert await transitions.mark_in_progress(session, execution_id)

    async def end(session: AsyncSession, execution_id: int) -> None:
        assert await transitions.mark_failed(session, execution_id, "runtime_error", "Boom.")
        await session.commit()

    async with sessionmaker() as one, sessionmaker() as other:
        # The first ends its item and holds the batch row; the other's trigger waits for it.
        await one.begin()
        assert await transitions.mark_failed(one, ids[0], "runtime_error", "Boom.")
        waiting = asyncio.create_task(end(other, ids[1]))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await one.commit()
        await asyncio.wait_for(waiting, 10)

    read = await client.get(f"/api/agentic-execution-batches/{batch['id']}/", headers=alice.headers)
    assert read.json()["status"] == "finished"
    assert read.json()["finished_at"] is not None

"""Revocation stops work: disabling a user, or removing him from a dataset, cancels his
executions not started; running ones finish unless the admin asks ``?cancel_running=true``."""

import asyncio
from collections.abc import Awaitable, Callable

from arq.connections import ArqRedis
from httpx import AsyncClient
from pydantic_ai.models.function import FunctionModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.models import AgenticExecution
from app.executions.queue import enqueue_execution
from tests.factories import Account, Factory
from tests.worker.harness import GatedModel, reload
from tests.worker.test_worker_process import arq_worker, until_terminal

Revoke = Callable[[AsyncClient, Account, Account, int, str], Awaitable[None]]


async def disable(
    client: AsyncClient, admin: Account, user: Account, dataset_id: int, query: str
) -> None:
    response = await client.patch(
        f"/api/users/{user.user.id}/{query}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def remove_member(
    client: AsyncClient, admin: Account, user: Account, dataset_id: int, query: str
) -> None:
    response = await client.delete(
        f"/api/datasets/{dataset_id}/members/{user.user.id}/{query}", headers=admin.headers
    )
    assert response.status_code == 204, response.text


async def alice_with_work(
    factory: Factory,
) -> tuple[Account, Account, int, AgenticExecution, AgenticExecution, AgenticExecution]:
    """Alice's running and queued executions on one dataset, and one on another dataset."""
    admin = await factory.account(admin=True, username="root")
    alice = await factory.account(username="alice")
    shop = await factory.dataset(alice)
    other = await factory.dataset(alice, name="Other")
    task_input = {"instructions": "Say hi.", "output_schema": None}
    agent = await factory.agent(shop, agent_type="structured-task")
    running = await factory.execution(agent, alice, input=task_input)
    queued = await factory.execution(agent, alice, input=task_input)
    elsewhere_agent = await factory.agent(other, agent_type="structured-task")
    elsewhere = await factory.execution(elsewhere_agent, alice, input=task_input)
    return admin, alice, shop.id, running, queued, elsewhere


async def test_disabling_cancels_queued_work_and_lets_running_work_finish(
    client: AsyncClient,
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin, alice, shop_id, running, queued, elsewhere = await alice_with_work(factory)
    bob = await factory.account(username="bob")
    bobs = await factory.execution(await factory.agent(await factory.dataset(bob)), bob)
    model = GatedModel()

    async with arq_worker(settings, FunctionModel(model)):
        await enqueue_execution(queue, running.id)
        await asyncio.wait_for(model.called.wait(), 5)
        await disable(client, admin, alice, shop_id, "")
        for execution in (queued, elsewhere):
            cancelled = await reload(sessionmaker, execution.id)
            assert (
                cancelled.status,
                cancelled.failure_code,
                cancelled.failure_explanation,
            ) == ("failed", "cancelled", "Cancelled by root.")
        model.release.set()
        finished = await until_terminal(sessionmaker, running.id)

    assert (finished.status, finished.result) == ("finished", {"greeting": "hi"})
    assert (await reload(sessionmaker, bobs.id)).status == "pending"


async def run_revocation_with_cancel_running(
    revoke: Revoke,
    client: AsyncClient,
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[AgenticExecution, AgenticExecution, AgenticExecution]:
    admin, alice, shop_id, running, queued, elsewhere = await alice_with_work(factory)
    model = GatedModel()
    async with arq_worker(settings, FunctionModel(model)):
        await enqueue_execution(queue, running.id)
        await asyncio.wait_for(model.called.wait(), 5)
        await revoke(client, admin, alice, shop_id, "?cancel_running=true")
        # The model never answers: only the cancellation ends the run.
        stopped = await until_terminal(sessionmaker, running.id)
    return (
        stopped,
        await reload(sessionmaker, queued.id),
        await reload(sessionmaker, elsewhere.id),
    )


async def test_disabling_with_cancel_running_stops_the_running_execution(
    client: AsyncClient,
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stopped, queued, elsewhere = await run_revocation_with_cancel_running(
        disable, client, settings, factory, queue, sessionmaker
    )

    for execution in (stopped, queued, elsewhere):
        assert (execution.status, execution.failure_code, execution.failure_explanation) == (
            "failed",
            "cancelled",
            "Cancelled by root.",
        )


async def test_removing_a_member_stops_his_work_on_that_dataset_only(
    client: AsyncClient,
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stopped, queued, elsewhere = await run_revocation_with_cancel_running(
        remove_member, client, settings, factory, queue, sessionmaker
    )

    for execution in (stopped, queued):
        assert (execution.status, execution.failure_code) == ("failed", "cancelled")
    assert elsewhere.status == "pending"


async def test_removing_a_member_by_default_lets_his_running_execution_finish(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin, alice, shop_id, running, queued, _ = await alice_with_work(factory)
    async with sessionmaker() as session, session.begin():
        stored = await session.get(AgenticExecution, running.id)
        assert stored is not None
        stored.status = "in_progress"  # type: ignore[assignment]

    await remove_member(client, admin, alice, shop_id, "")

    still_running = await reload(sessionmaker, running.id)
    assert still_running.status == "in_progress"
    assert still_running.cancel_requested_at is None
    assert (await reload(sessionmaker, queued.id)).failure_code == "cancelled"


async def test_an_admin_removed_from_a_dataset_keeps_his_work(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    root = await factory.account(admin=True, username="root")
    carol = await factory.account(admin=True, username="carol")
    shop = await factory.dataset(carol)
    queued = await factory.execution(await factory.agent(shop), carol)

    await remove_member(client, root, carol, shop.id, "")

    assert (await reload(sessionmaker, queued.id)).status == "pending"

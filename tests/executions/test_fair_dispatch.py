"""Which waiting executions the dispatcher releases (app/executions/dispatch.py), over the real
database: the key with the least load over weight first, oldest first within a key, interactive
before batch but for batch's reserved share; and when the API releases an execution at once."""

from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.executions.dispatch import release_waiting
from app.executions.models import AgenticExecution, ExecutionPriority
from app.executions.queue import enqueue_execution, job_id_for
from tests.factories import Account, Factory

T0 = utcnow() - timedelta(hours=1)


async def release(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, slots: int
) -> list[int]:
    async with sessionmaker() as session, session.begin():
        return await release_waiting(session, settings, slots)


async def backlog(
    factory: Factory,
    agent: Agent,
    owner: Account,
    count: int,
    *,
    start: int = 0,
    priority: ExecutionPriority = ExecutionPriority.INTERACTIVE,
    **fields: Any,
) -> list[int]:
    """``count`` executions of ``owner`` waiting for the dispatcher, one a second from
    T0 + ``start`` s."""
    return [
        (
            await factory.execution(
                agent,
                owner,
                started_at=T0 + timedelta(seconds=start + n),
                dispatched_at=None,
                priority=priority,
                **fields,
            )
        ).id
        for n in range(count)
    ]


async def shop(factory: Factory, *names: str) -> tuple[Agent, list[Account]]:
    accounts = [await factory.account(username=name) for name in names]
    agent = await factory.agent(await factory.dataset(*accounts))
    return agent, accounts


async def test_a_user_with_less_running_gets_the_next_slots_and_each_user_oldest_first(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice, bob) = await shop(factory, "alice", "bob")
    for _ in range(3):
        await factory.execution(agent, alice, status="in_progress", attempts=1)
    alices = await backlog(factory, agent, alice, 10)
    bobs = await backlog(factory, agent, bob, 2, start=100)

    first = await release(sessionmaker, settings, 3)
    # Bob had nothing running: both his go before Alice's 4th; then Alice's oldest.
    assert sorted(first) == sorted([*bobs, alices[0]])
    second = await release(sessionmaker, settings, 2)
    assert sorted(second) == alices[1:3]


async def test_weights_share_the_slots_in_their_proportion(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice, bob) = await shop(factory, "alice", "bob")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(User).where(User.id == alice.user.id).values(fair_share_weight=3)
        )
    alices = await backlog(factory, agent, alice, 20)
    bobs = await backlog(factory, agent, bob, 20)

    released = await release(sessionmaker, settings, 8)

    assert len(set(released) & set(alices)) == 6
    assert len(set(released) & set(bobs)) == 2


async def test_recently_released_work_counts_against_a_user(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice, bob) = await shop(factory, "alice", "bob")
    await backlog(factory, agent, alice, 5)
    assert len(await release(sessionmaker, settings, 5)) == 5
    async with sessionmaker() as session, session.begin():
        await session.execute(update(AgenticExecution).values(status="finished"))
    # Nothing of Alice's runs any more, but she just had five: Bob's later one goes first.
    [alices] = await backlog(factory, agent, alice, 1, start=10)
    [bobs] = await backlog(factory, agent, bob, 1, start=20)

    assert await release(sessionmaker, settings, 1) == [bobs]
    assert await release(sessionmaker, settings, 1) == [alices]


async def test_interactive_goes_before_older_batch_work_which_keeps_its_share(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice, bob) = await shop(factory, "alice", "bob")
    batch = await backlog(factory, agent, alice, 30, priority=ExecutionPriority.BATCH)
    interactive = await backlog(factory, agent, bob, 30, start=100)

    assert await release(sessionmaker, settings, 1) == [interactive[0]]
    released = [await release(sessionmaker, settings, 1) for _ in range(29)]

    batch_released = [ids for ids in released if ids[0] in batch]
    # 10 % of the releases while both wait (AGENTRUN_FAIR_SHARE_BATCH_SHARE): never starved.
    assert len(batch_released) == 3
    # And they are the oldest batch ones, in order.
    assert [ids[0] for ids in batch_released] == batch[:3]


async def test_batch_alone_takes_every_slot(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice,) = await shop(factory, "alice")
    batch = await backlog(factory, agent, alice, 5, priority=ExecutionPriority.BATCH)

    assert sorted(await release(sessionmaker, settings, 8)) == batch


async def test_the_dataset_can_be_the_fairness_key(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = await factory.account(), await factory.account()
    big_shop = await factory.agent(await factory.dataset(alice, bob, name="Big"))
    small_shop = await factory.agent(await factory.dataset(bob, name="Small"))
    # Bob submits in both shops; Alice fills the big one.
    await backlog(factory, big_shop, alice, 10)
    await backlog(factory, big_shop, bob, 10, start=20)
    smalls = await backlog(factory, small_shop, bob, 2, start=40)
    by_dataset = settings.model_copy(update={"fair_share_key": "dataset"})

    released = await release(sessionmaker, by_dataset, 4)

    # One slot each way, turn about: the small shop's two are among the first four.
    assert set(smalls) <= set(released)


async def test_with_fair_share_off_the_oldest_go_first(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice, bob) = await shop(factory, "alice", "bob")
    alices = await backlog(factory, agent, alice, 10)
    await backlog(factory, agent, bob, 2, start=100)
    fifo = settings.model_copy(update={"fair_share": False})

    assert await release(sessionmaker, fifo, 3) == alices[:3]


async def test_a_cancelled_or_running_execution_is_never_released(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    agent, (alice,) = await shop(factory, "alice")
    waiting = await backlog(factory, agent, alice, 3)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecution)
            .where(AgenticExecution.id == waiting[0])
            .values(status="failed", failure_code="cancelled")
        )

    assert sorted(await release(sessionmaker, settings, 5)) == waiting[1:]
    assert await release(sessionmaker, settings, 5) == []


BODY = {"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-001"]}}


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def dispatched(session: AsyncSession, execution_id: int) -> bool:
    found = await session.scalar(
        select(AgenticExecution.dispatched_at).where(AgenticExecution.id == execution_id)
    )
    return found is not None


async def test_the_api_enqueues_at_once_while_nothing_waits_and_else_leaves_it_waiting(
    client: AsyncClient,
    factory: Factory,
    queue: ArqRedis,
    settings: Settings,
    session: AsyncSession,
) -> None:
    agent, (alice,) = await shop(factory, "alice")

    # An idle fleet: enqueued at once (no worker here takes it: it stays in the queue).
    first = (await client.post(url(agent.id), json=BODY, headers=alice.headers)).json()["id"]
    assert await queue.zscore(settings.queue_name, job_id_for(first)) is not None
    assert await dispatched(session, first)

    # A job waits in arq's queue already (every slot taken): this one waits in PostgreSQL.
    second = (await client.post(url(agent.id), json=BODY, headers=alice.headers)).json()["id"]
    assert await queue.zscore(settings.queue_name, job_id_for(second)) is None
    assert not await dispatched(session, second)

    # The queue empties, but an execution waits: the next one does not overtake it.
    await queue.delete(settings.queue_name)
    third = (await client.post(url(agent.id), json=BODY, headers=alice.headers)).json()["id"]
    assert await queue.zcard(settings.queue_name) == 0
    assert not await dispatched(session, third)

    # What waits is listed as pending.
    listed = await client.get(
        "/api/agentic-executions/", params={"status": "pending"}, headers=alice.headers
    )
    assert {item["id"] for item in listed.json()["results"]} == {first, second, third}


async def test_with_fair_share_off_the_api_always_enqueues(
    factory: Factory, queue: ArqRedis, settings: Settings, session: AsyncSession
) -> None:
    from tests.factories import client_with_settings

    agent, (alice,) = await shop(factory, "alice")
    await enqueue_execution(queue, 999)
    async with client_with_settings(settings, fair_share=False) as client:
        response = await client.post(url(agent.id), json=BODY, headers=alice.headers)

    execution_id = response.json()["id"]
    assert await queue.zscore(settings.queue_name, job_id_for(execution_id)) is not None
    assert await dispatched(session, execution_id)


async def test_an_admin_sets_a_users_weight_which_the_dispatcher_uses(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin = await factory.account(admin=True)
    agent, (alice, bob) = await shop(factory, "alice", "bob")
    weight_url = f"/api/users/{alice.user.id}/fair-share/"

    assert (await client.get(weight_url, headers=admin.headers)).json() == {"weight": 1.0}
    set_to_3 = await client.put(weight_url, json={"weight": 3}, headers=admin.headers)
    by_alice = await client.put(weight_url, json={"weight": 100}, headers=alice.headers)
    zero = await client.put(weight_url, json={"weight": 0}, headers=admin.headers)
    huge = await client.put(weight_url, json={"weight": 1e9}, headers=admin.headers)
    not_a_number = await client.put(weight_url, json={"weight": "lots"}, headers=admin.headers)
    nobody = await client.put(
        "/api/users/999999/fair-share/", json={"weight": 2}, headers=admin.headers
    )

    assert (set_to_3.status_code, set_to_3.json()) == (200, {"weight": 3.0})
    assert by_alice.status_code == 403
    assert [zero.status_code, huge.status_code, not_a_number.status_code] == [400, 400, 400]
    assert "weight" in zero.json()
    assert nobody.status_code == 404
    alices = await backlog(factory, agent, alice, 10)
    await backlog(factory, agent, bob, 10)
    released = await release(sessionmaker, settings, 4)
    assert len(set(released) & set(alices)) == 3


async def test_the_cli_sets_a_users_weight(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    from tests.cli.test_cli import agentrun

    admin = await factory.account(admin=True)
    alice = await factory.account(username="alice")

    done = await agentrun(settings.database_url, "users", "weight", "alice", "2.5")
    refused = await agentrun(settings.database_url, "users", "weight", "alice", "-1")
    shown = await client.get(f"/api/users/{alice.user.id}/fair-share/", headers=admin.headers)

    assert done.code == 0, done.stderr
    assert "weight 2.5" in done.stdout
    assert refused.code == 2
    assert "above 0" in refused.stderr
    assert shown.json() == {"weight": 2.5}


async def test_metrics_give_the_pending_executions_by_priority(
    settings: Settings, factory: Factory
) -> None:
    from tests.core.test_observability import operator_port

    agent, (alice, bob) = await shop(factory, "alice", "bob")
    await backlog(factory, agent, alice, 3, priority=ExecutionPriority.BATCH)
    await backlog(factory, agent, bob, 2)

    async with operator_port(settings) as (_, scraper):
        text = (await scraper.get("/metrics")).text

    assert 'agentrun_executions_pending{priority="batch"} 3.0' in text
    assert 'agentrun_executions_pending{priority="interactive"} 2.0' in text
    # Bounded labels: nothing per user.
    assert "alice" not in text

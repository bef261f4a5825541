"""POST /api/agentic-executions/{id}/cancel/: failed with code `cancelled`, owner or admin."""

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.executions.models import AgenticExecution
from tests.factories import Factory


def cancel_url(execution_id: int) -> str:
    return f"/api/agentic-executions/{execution_id}/cancel/"


async def test_cancelling_a_pending_execution_fails_it_at_once(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account(username="alice")
    agent = await factory.agent(await factory.dataset(alice))
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={"execution_key": "catalog-enrichment"},
        headers=alice.headers,
    )

    response = await client.post(cancel_url(started.json()["id"]), headers=alice.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert body["failure_code"] == "cancelled"
    assert body["failure_explanation"] == "Cancelled by alice."
    assert body["finished_at"] is not None
    read = await client.get(f"/api/agentic-executions/{body['id']}/", headers=alice.headers)
    assert read.json() == body


async def test_cancelling_a_running_execution_asks_its_worker_to_stop(
    client: AsyncClient, factory: Factory, session: AsyncSession, queue: ArqRedis
) -> None:
    alice = await factory.account(username="alice")
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice, status="in_progress")

    response = await client.post(cancel_url(execution.id), headers=alice.headers)

    assert response.status_code == 202
    assert response.json()["status"] == "in_progress"
    stored = await session.get(AgenticExecution, execution.id)
    assert stored is not None
    assert stored.cancel_requested_at is not None
    assert stored.cancel_requested_by == "alice"
    # The arq job is aborted: the worker (allow_abort_jobs) cancels the running task.
    assert await queue.zscore(abort_jobs_ss, f"execution:{execution.id}") is not None


async def test_asking_twice_keeps_the_first_request(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account(username="alice")
    admin = await factory.account(admin=True, username="root")
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice, status="in_progress")

    first = await client.post(cancel_url(execution.id), headers=alice.headers)
    second = await client.post(cancel_url(execution.id), headers=admin.headers)

    assert first.status_code == second.status_code == 202
    stored = await session.get(AgenticExecution, execution.id)
    assert stored is not None
    assert stored.cancel_requested_by == "alice"


async def test_cancelling_a_finished_execution_is_409(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    finished = await factory.execution(
        agent, alice, status="finished", result={"SKU-1": "ok"}, finished_at=utcnow()
    )

    response = await client.post(cancel_url(finished.id), headers=alice.headers)

    assert response.status_code == 409
    assert response.json() == {"detail": "Execution already finished."}
    read = await client.get(f"/api/agentic-executions/{finished.id}/", headers=alice.headers)
    assert read.json()["status"] == "finished"


async def test_cancelling_twice_is_409_the_second_time(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)

    first = await client.post(cancel_url(execution.id), headers=alice.headers)
    second = await client.post(cancel_url(execution.id), headers=alice.headers)

    assert first.status_code == 200
    assert second.status_code == 409


async def test_another_users_execution_cannot_be_cancelled(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice, bob))
    execution = await factory.execution(agent, alice)

    response = await client.post(cancel_url(execution.id), headers=bob.headers)

    assert response.status_code == 404
    assert response.json() == {"detail": "Execution not found."}
    read = await client.get(f"/api/agentic-executions/{execution.id}/", headers=alice.headers)
    assert read.json()["status"] == "pending"


async def test_an_admin_cancels_anyones_execution_under_his_own_name(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    admin = await factory.account(admin=True, username="root")
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)

    response = await client.post(cancel_url(execution.id), headers=admin.headers)

    assert response.status_code == 200
    assert response.json()["failure_explanation"] == "Cancelled by root."

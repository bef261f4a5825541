"""The API under outages: PostgreSQL down → 503; Redis down → executions are kept, not lost."""

from datetime import timedelta

from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.models import AgenticExecution
from tests.factories import Factory, client_with_settings
from workers.background.reconciler import reconcile_executions

# Nothing listens on port 1: connections are refused at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/agentrun"
BODY = {"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-001"]}}


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def stored(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(AgenticExecution)) or 0


async def test_with_the_database_down_the_api_answers_503_json(settings: Settings) -> None:
    async with client_with_settings(settings, database_url=DEAD_DATABASE) as client:
        responses = [
            await client.get("/api/users/me/", headers={"Authorization": "Token ar_x"}),
            await client.get("/api/agentic-executions/", headers={"Authorization": "Token ar_x"}),
            await client.post(url(1), json=BODY, headers={"Authorization": "Token ar_x"}),
        ]
        ready = await client.get("/readyz")

    for response in responses:
        assert response.status_code == 503
        assert response.json() == {"detail": "Database unavailable, try again shortly."}
        assert response.headers["Retry-After"]
    assert ready.status_code == 503
    assert ready.json()["database"].startswith("unavailable")


async def test_a_database_that_refuses_us_is_503_too(settings: Settings) -> None:
    # The server answers, but cannot serve this database (dropped, being restored, renamed).
    missing = settings.database_url.rsplit("/", 1)[0] + "/agentrun_missing"
    async with client_with_settings(settings, database_url=missing) as client:
        response = await client.get("/api/users/me/", headers={"Authorization": "Token ar_x"})

    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable, try again shortly."}


async def test_the_api_starts_with_redis_down_and_readyz_says_so(settings: Settings) -> None:
    async with client_with_settings(settings, redis_url=DEAD_REDIS) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["database"] == "ok"
    assert ready.json()["redis"].startswith("unavailable")


async def test_with_redis_down_a_submitted_execution_is_kept_and_enqueued_later(
    settings: Settings,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    async with client_with_settings(settings, redis_url=DEAD_REDIS) as client:
        response = await client.post(url(agent.id), json=BODY, headers=alice.headers)

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert await queue.zcard(settings.queue_name) == 0
    # Redis is back: the worker's reconciler finds the execution and enqueues it.
    await session.execute(
        update(AgenticExecution).values(
            started_at=AgenticExecution.started_at - timedelta(minutes=1),
            dispatched_at=AgenticExecution.dispatched_at - timedelta(minutes=1),
        )
    )
    await session.commit()
    assert await reconcile_executions(sessionmaker, queue, job_timeout_seconds=600) == 1
    assert await queue.zcard(settings.queue_name) == 1


async def test_set_to_refuse_with_redis_down_the_start_is_503_and_nothing_is_stored(
    settings: Settings, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    async with client_with_settings(
        settings, redis_url=DEAD_REDIS, reject_when_queue_down=True
    ) as client:
        response = await client.post(url(agent.id), json=BODY, headers=alice.headers)

    assert response.status_code == 503
    assert response.json() == {
        "detail": "Job queue unavailable, try again shortly. Nothing was stored."
    }
    assert await stored(session) == 0


async def test_set_to_refuse_with_redis_up_the_start_is_accepted(
    settings: Settings, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    async with client_with_settings(settings, reject_when_queue_down=True) as client:
        response = await client.post(url(agent.id), json=BODY, headers=alice.headers)

    assert response.status_code == 202


async def test_the_rate_limiter_lets_requests_through_while_redis_is_down(
    settings: Settings, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    async with client_with_settings(
        settings, redis_url=DEAD_REDIS, rate_limit_per_minute=1
    ) as client:
        responses = [
            await client.post(url(agent.id), json=BODY, headers=alice.headers) for _ in range(3)
        ]

    assert {response.status_code for response in responses} == {202}


async def test_cancelling_a_running_execution_with_redis_down_still_records_the_request(
    settings: Settings, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice, status="in_progress")

    async with client_with_settings(settings, redis_url=DEAD_REDIS) as client:
        response = await client.post(
            f"/api/agentic-executions/{execution.id}/cancel/", headers=alice.headers
        )

    assert response.status_code == 202
    row = await session.get(AgenticExecution, execution.id)
    assert row is not None
    assert row.cancel_requested_at is not None


async def test_no_free_database_connection_in_time_is_503_not_500(
    settings: Settings, factory: Factory
) -> None:
    from httpx import ASGITransport, AsyncClient

    from app.main import create_app

    alice = await factory.account()
    app = create_app(
        settings.model_copy(update={"database_pool_size": 1, "database_pool_timeout_seconds": 0.2})
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
        app.state.sessionmaker() as holder,
    ):
        await holder.connection()  # the pool's only connection, held
        response = await client.get("/api/users/me/", headers=alice.headers)

    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable, try again shortly."}


async def test_a_pooled_connection_the_server_closed_is_503_once_then_replaced(
    settings: Settings, factory: Factory, session: AsyncSession
) -> None:
    from httpx import ASGITransport, AsyncClient
    from sqlalchemy import text

    from app.main import create_app

    alice = await factory.account()
    app = create_app(settings.model_copy(update={"database_pool_size": 1}))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        async with app.state.sessionmaker() as app_session:
            backend = await app_session.scalar(text("SELECT pg_backend_pid()"))
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

        lost = await client.get("/api/users/me/", headers=alice.headers)
        after = await client.get("/api/users/me/", headers=alice.headers)

    assert lost.status_code == 503
    assert after.status_code == 200

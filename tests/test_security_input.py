"""Hostile values that pass the schema but not the database are 400, never 500."""

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import Factory


async def test_an_id_beyond_the_databases_integers_is_400(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()

    for path in (
        "/api/agents/99999999999/",
        "/api/agentic-executions/99999999999/",
        "/api/conversations/99999999999/",
        "/api/agentic-executions/?agent_id=99999999999",
    ):
        response = await client.get(path, headers=alice.headers)

        assert response.status_code == 400, path
        assert "out of int32 range" in response.json()["detail"]


async def test_a_nul_character_in_text_is_400(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True)

    response = await client.post("/api/datasets/", json={"name": "a\x00b"}, headers=admin.headers)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("A value in the request cannot be stored")


async def test_a_control_character_in_a_token_is_401(client: AsyncClient) -> None:
    response = await client.get("/api/users/me/", headers={"Authorization": "Token ar_\x01"})

    assert response.status_code == 401


async def test_a_value_refused_before_it_reaches_the_server_leaves_no_lock_behind(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    # asyncpg refuses to encode the id and leaves that connection mid-statement, holding its
    # table locks: it must not go back to the pool.
    alice = await factory.account()

    response = await client.get("/api/agentic-executions/99999999999/", headers=alice.headers)

    assert response.status_code == 400
    await session.execute(text("SET LOCAL lock_timeout = '2s'"))
    await session.execute(text("LOCK TABLE agentic_executions IN ACCESS EXCLUSIVE MODE"))
    await session.rollback()

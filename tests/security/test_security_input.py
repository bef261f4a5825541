"""Hostile values that pass the schema but not the database are 4xx, never 500."""

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.executions import repository
from tests.factories import Factory

BEYOND_INT32 = ("2147483648", "99999999999999999999", "9" * 4400)


async def test_an_id_beyond_the_databases_integers_is_404_after_authentication(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset(admin)
    agent = await factory.agent(dataset)
    paths = (
        "/api/agents/{}/",
        "/api/agents/{}/agentic-execution-definitions/",
        "/api/agentic-executions/{}/",
        "/api/conversations/{}/",
        "/api/datasets/{}/products/",
        "/api/users/{}/tokens/",
        f"/api/users/{admin.user.id}/tokens/{{}}/revoke/",
        "/media/conversations/{}/a.txt",
    )
    for template in paths:
        method = "POST" if template.endswith("revoke/") else "GET"
        # As answered for an id that could exist but does not.
        missing = await client.request(method, template.format(123456), headers=admin.headers)
        assert missing.status_code == 404, template
        for id_ in BEYOND_INT32:
            path = template.format(id_)

            anonymous = await client.request(method, path)
            response = await client.request(method, path, headers=admin.headers)

            assert anonymous.status_code == 401, path
            assert response.status_code == 404, path
            assert response.json() == missing.json(), path
    for id_ in BEYOND_INT32:
        cancel = await client.post(f"/api/agentic-executions/{id_}/cancel/", headers=admin.headers)
        start = await client.post(
            f"/api/agents/{id_}/agentic-executions/",
            json={"execution_key": "catalog-enrichment"},
            headers=admin.headers,
        )
        assert cancel.status_code == start.status_code == 404
    assert agent.id != 123456


async def test_a_filter_id_beyond_the_databases_integers_matches_nothing(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    await factory.execution(await factory.agent(await factory.dataset(alice)), alice)
    for name in ("agent_id", "dataset_id"):
        missing = await client.get(
            "/api/agentic-executions/", params={name: 123456}, headers=alice.headers
        )
        for id_ in BEYOND_INT32:
            params = {name: id_}

            anonymous = await client.get("/api/agentic-executions/", params=params)
            response = await client.get(
                "/api/agentic-executions/", params=params, headers=alice.headers
            )

            assert anonymous.status_code == 401
            assert response.status_code == 200
            assert response.json() == missing.json() == {
                "count": 0, "next": None, "previous": None, "results": []
            }  # fmt: skip


async def test_a_page_that_is_not_a_plain_page_number_is_an_invalid_page(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    await factory.execution(await factory.agent(await factory.dataset(alice)), alice)
    for page in ("²", "٣", "9" * 4400, "99999999999999999999", "2147483647", "0", "-1", "1.0"):
        anonymous = await client.get("/api/agentic-executions/", params={"page": page})
        response = await client.get(
            "/api/agentic-executions/", params={"page": page}, headers=alice.headers
        )

        assert anonymous.status_code == 401, page
        assert response.status_code == 404, page
        assert response.json() == {"detail": "Invalid page."}, page


async def test_a_nul_character_in_text_is_400(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True)

    response = await client.post("/api/datasets/", json={"name": "a\x00b"}, headers=admin.headers)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("A value in the request cannot be stored")


async def test_a_control_character_in_a_token_is_401(client: AsyncClient) -> None:
    response = await client.get("/api/users/me/", headers={"Authorization": "Token ar_\x01"})

    assert response.status_code == 401


async def test_a_value_refused_before_it_reaches_the_server_leaves_no_lock_behind(
    sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    # asyncpg refuses to encode a value out of its parameter's range and leaves that
    # connection mid-statement, holding its table locks: it must not go back to the pool so.
    # (Ids from clients no longer get there: they are read as an id no row has.)
    async with sessionmaker() as refused:
        with pytest.raises(DBAPIError, match="out of int32 range"):
            await repository.get_execution(refused, 2**40)

    await session.execute(text("SET LOCAL lock_timeout = '2s'"))
    await session.execute(text("LOCK TABLE agentic_executions IN ACCESS EXCLUSIVE MODE"))
    await session.rollback()

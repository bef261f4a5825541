from httpx import AsyncClient

from tests.factories import Factory


async def test_definitions_list_the_agent_types_input_schema(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    response = await client.get(
        f"/api/agents/{agent.id}/agentic-execution-definitions/", headers=alice.headers
    )

    assert response.status_code == 200
    [definition] = response.json()
    assert definition["key"] == "catalog-enrichment"
    assert definition["name"] == "Catalog Enrichment"
    assert definition["description"] is None
    schema = definition["input_schema"]
    assert schema["title"] == "CatalogEnrichmentAgenticExecutionInput"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["skus"] == {
        "title": "Skus",
        "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
        "default": None,
    }


async def test_definitions_of_an_agent_type_without_any_is_an_empty_list(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="nothing-registered")

    response = await client.get(
        f"/api/agents/{agent.id}/agentic-execution-definitions/", headers=alice.headers
    )

    assert response.status_code == 200
    assert response.json() == []


async def test_definitions_of_an_agent_outside_your_datasets_is_404(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    foreign = await client.get(
        f"/api/agents/{agent.id}/agentic-execution-definitions/", headers=bob.headers
    )
    missing = await client.get(
        "/api/agents/999/agentic-execution-definitions/", headers=alice.headers
    )

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Agent not found."}


async def test_admin_sees_definitions_of_every_agent(client: AsyncClient, factory: Factory) -> None:
    alice, admin = await factory.account(), await factory.account(admin=True)
    agent = await factory.agent(await factory.dataset(alice))

    response = await client.get(
        f"/api/agents/{agent.id}/agentic-execution-definitions/", headers=admin.headers
    )

    assert response.status_code == 200
    assert [d["key"] for d in response.json()] == ["catalog-enrichment"]


async def test_missing_or_wrong_token_is_401_with_token_challenge(
    client: AsyncClient, factory: Factory
) -> None:
    url = "/api/agents/1/agentic-execution-definitions/"
    for headers in ({}, {"Authorization": "Token nope"}, {"Authorization": "Bearer x"}):
        response = await client.get(url, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Token"
        assert "detail" in response.json()

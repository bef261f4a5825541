"""Nobody reaches another user's objects: each endpoint tried with someone else's ids.

Objects of others read as 404 (their ids do not leak); admin-only endpoints answer 403.
"""

from dataclasses import dataclass

import pytest
from httpx import AsyncClient

from tests.factories import Account, Factory


@dataclass
class World:
    alice: Account
    mallory: Account  # a regular user with a dataset and agent of her own
    dataset: int
    agent: int
    execution: int
    conversation: int
    file_url: str


@pytest.fixture
async def world(client: AsyncClient, factory: Factory) -> World:
    alice, mallory = await factory.account(), await factory.account()
    dataset = await factory.dataset(alice)
    agent = await factory.agent(dataset, file_upload=True)
    await factory.product(dataset, "SKU-1", name="Secret product")
    await factory.agent(await factory.dataset(mallory, name="Mallory's"), name="Hers")
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        data={"execution_key": "catalog-enrichment"},
        files={"files[]": ("secret.txt", b"alice's notes", "text/plain")},
        headers=alice.headers,
    )
    assert started.status_code == 202
    body = started.json()
    return World(
        alice=alice,
        mallory=mallory,
        dataset=dataset.id,
        agent=agent.id,
        execution=body["id"],
        conversation=body["conversation"],
        file_url=body["files"][0]["file_url"],
    )


async def test_another_users_objects_are_404(client: AsyncClient, world: World) -> None:
    requests = [
        ("GET", f"/api/agentic-executions/{world.execution}/", None),
        ("POST", f"/api/agentic-executions/{world.execution}/cancel/", None),
        ("GET", f"/api/conversations/{world.conversation}/", None),
        ("GET", world.file_url, None),
        ("GET", f"/api/agents/{world.agent}/", None),
        ("GET", f"/api/agents/{world.agent}/agentic-execution-definitions/", None),
        ("POST", f"/api/agents/{world.agent}/agentic-executions/", {"execution_key": "x"}),
        ("GET", f"/api/datasets/{world.dataset}/products/", None),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=world.mallory.headers)

        assert response.status_code == 404, (method, path, response.text)
        assert "secret" not in response.text.lower()
    # ... while the owner still reaches every one of them, untouched.
    for method, path, _ in requests:
        if method == "GET":
            response = await client.get(path, headers=world.alice.headers)
            assert response.status_code == 200, path
    execution = await client.get(
        f"/api/agentic-executions/{world.execution}/", headers=world.alice.headers
    )
    assert execution.json()["status"] == "pending"


async def test_lists_and_filters_show_nothing_of_others(client: AsyncClient, world: World) -> None:
    headers = world.mallory.headers

    executions = await client.get("/api/agentic-executions/", headers=headers)
    by_agent = await client.get(f"/api/agentic-executions/?agent_id={world.agent}", headers=headers)
    by_dataset = await client.get(
        f"/api/agentic-executions/?dataset_id={world.dataset}", headers=headers
    )
    agents = await client.get("/api/agents/", headers=headers)
    datasets = await client.get("/api/datasets/", headers=headers)

    assert executions.json()["count"] == by_agent.json()["count"] == 0
    assert by_dataset.json()["count"] == 0
    assert world.agent not in [agent["id"] for agent in agents.json()]
    assert world.dataset not in [dataset["id"] for dataset in datasets.json()]


async def test_admin_endpoints_are_403_for_regular_users(client: AsyncClient, world: World) -> None:
    alice_id = world.alice.user.id
    requests = [
        ("GET", "/api/users/", None),
        ("POST", "/api/users/", {"username": "eve", "is_admin": True}),
        ("GET", f"/api/users/{alice_id}/tokens/", None),
        ("POST", f"/api/users/{alice_id}/tokens/", {"name": "stolen"}),
        ("POST", f"/api/users/{alice_id}/tokens/1/revoke/", None),
        ("POST", "/api/datasets/", {"name": "Mine now"}),
        ("POST", f"/api/datasets/{world.dataset}/members/", {"user_id": world.mallory.user.id}),
        ("POST", f"/api/datasets/{world.dataset}/products/", {"sku": "SKU-2"}),
        ("POST", "/api/agents/", {"name": "x", "dataset_id": world.dataset, "agent_type": "x"}),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=world.mallory.headers)

        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == {"detail": "This endpoint needs an admin token."}
    # Nothing happened: alice's token still works, mallory is still no member.
    assert (await client.get("/api/users/me/", headers=world.alice.headers)).status_code == 200
    products = await client.get(
        f"/api/datasets/{world.dataset}/products/", headers=world.mallory.headers
    )
    assert products.status_code == 404


async def test_an_idempotency_key_never_answers_another_users_execution(
    client: AsyncClient, factory: Factory
) -> None:
    alice, mallory = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice, mallory))
    body = {"execution_key": "catalog-enrichment"}

    alices = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json=body,
        headers={**alice.headers, "Idempotency-Key": "guessable"},
    )
    mallorys = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json=body,
        headers={**mallory.headers, "Idempotency-Key": "guessable"},
    )

    assert mallorys.status_code == 202
    assert mallorys.json()["id"] != alices.json()["id"]
    assert mallorys.json()["conversation"] != alices.json()["conversation"]

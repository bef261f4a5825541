"""Users, datasets, members, products and agents: the admin side of the API."""

import re
from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import Factory

TIMESTAMP_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


async def test_me_answers_who_the_token_belongs_to(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account(username="alice")
    admin = await factory.account(admin=True, username="root")

    mine = await client.get("/api/users/me/", headers=alice.headers)
    theirs = await client.get("/api/users/me/", headers=admin.headers)

    assert mine.status_code == 200
    assert mine.json() == {
        "id": alice.user.id,
        "username": "alice",
        "is_admin": False,
        "is_active": True,
    }
    assert theirs.json() == {
        "id": admin.user.id,
        "username": "root",
        "is_admin": True,
        "is_active": True,
    }


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/users/me/"),
        ("GET", "/api/datasets/"),
        ("POST", "/api/datasets/"),
        ("POST", "/api/datasets/1/members/"),
        ("GET", "/api/datasets/1/products/"),
        ("POST", "/api/datasets/1/products/"),
        ("GET", "/api/agents/"),
        ("POST", "/api/agents/"),
        ("GET", "/api/agents/1/"),
    ],
)
async def test_every_admin_api_endpoint_needs_a_token(
    client: AsyncClient, method: str, url: str
) -> None:
    response = await client.request(method, url, json={})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/datasets/", {"name": "Shop"}),
        ("/api/datasets/1/members/", {"user_id": 1}),
        ("/api/datasets/1/products/", {"sku": "A"}),
        ("/api/agents/", {"name": "A", "dataset_id": 1, "agent_type": "catalog-enrichment"}),
    ],
)
async def test_admin_endpoints_refuse_a_regular_user(
    client: AsyncClient, factory: Factory, url: str, body: dict[str, Any]
) -> None:
    alice = await factory.account()
    await factory.dataset(alice)

    response = await client.post(url, json=body, headers=alice.headers)

    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs an admin token."}


# Datasets and members


async def test_admin_creates_a_dataset(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True)

    response = await client.post("/api/datasets/", json={"name": " Spring "}, headers=admin.headers)

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Spring"
    assert re.match(TIMESTAMP_PATTERN, body["created_at"])
    assert set(body) == {"id", "name", "created_at"}
    listed = await client.get("/api/datasets/", headers=admin.headers)
    assert listed.json() == [body]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"name": "Field required"}),
        ({"name": ""}, {"name": "String should have at least 1 character"}),
        ({"name": "x", "owner": 1}, {"owner": "Extra inputs are not permitted"}),
    ],
)
async def test_creating_an_invalid_dataset_names_the_field(
    client: AsyncClient, factory: Factory, body: dict[str, Any], errors: dict[str, str]
) -> None:
    admin = await factory.account(admin=True)

    response = await client.post("/api/datasets/", json=body, headers=admin.headers)

    assert response.status_code == 400
    assert response.json() == errors


async def test_users_list_only_the_datasets_they_are_members_of(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    admin = await factory.account(admin=True)
    first = await factory.dataset(alice, name="First")
    second = await factory.dataset(bob, name="Second")
    both = await factory.dataset(alice, bob, name="Both")

    def ids(response: Any) -> list[int]:
        return [d["id"] for d in response.json()]

    assert ids(await client.get("/api/datasets/", headers=alice.headers)) == [first.id, both.id]
    assert ids(await client.get("/api/datasets/", headers=bob.headers)) == [second.id, both.id]
    assert ids(await client.get("/api/datasets/", headers=admin.headers)) == [
        first.id,
        second.id,
        both.id,
    ]


async def test_adding_a_member_shows_him_the_dataset_once(
    client: AsyncClient, factory: Factory
) -> None:
    admin, alice = await factory.account(admin=True), await factory.account()
    dataset = await factory.dataset()
    url = f"/api/datasets/{dataset.id}/members/"

    added = await client.post(url, json={"user_id": alice.user.id}, headers=admin.headers)
    again = await client.post(url, json={"user_id": alice.user.id}, headers=admin.headers)

    assert added.status_code == 201
    assert again.status_code == 200
    assert added.json() == again.json() == {"dataset": dataset.id, "user": alice.user.id}
    listed = await client.get("/api/datasets/", headers=alice.headers)
    assert [d["id"] for d in listed.json()] == [dataset.id]


async def test_adding_a_member_to_an_unknown_dataset_or_user_is_404(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    no_dataset = await client.post(
        "/api/datasets/999/members/", json={"user_id": admin.user.id}, headers=admin.headers
    )
    no_user = await client.post(
        f"/api/datasets/{dataset.id}/members/", json={"user_id": 999}, headers=admin.headers
    )
    bad_id = await client.post(
        f"/api/datasets/{dataset.id}/members/", json={"user_id": "bob"}, headers=admin.headers
    )

    assert no_dataset.status_code == no_user.status_code == 404
    assert no_dataset.json() == {"detail": "Dataset not found."}
    assert no_user.json() == {"detail": "User not found."}
    assert bad_id.status_code == 400
    assert list(bad_id.json()) == ["user_id"]


# Agents


async def test_admin_creates_an_agent_with_model_settings(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    response = await client.post(
        "/api/agents/",
        json={
            "name": "Enricher",
            "dataset_id": dataset.id,
            "agent_type": "catalog-enrichment",
            "file_upload": True,
            "model": {"name": "test", "temperature": 0.2},
        },
        headers=admin.headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "Enricher",
        "dataset": dataset.id,
        "agent_type": "catalog-enrichment",
        "file_upload": True,
        "model": {"name": "test", "base_url": None, "api_key_env": None, "temperature": 0.2},
        "created_at": body["created_at"],
        "deleted_at": None,
        "limits": None,
    }
    read = await client.get(f"/api/agents/{body['id']}/", headers=admin.headers)
    assert read.json() == body
    # The new agent offers its type's execution definitions.
    definitions = await client.get(
        f"/api/agents/{body['id']}/agentic-execution-definitions/", headers=admin.headers
    )
    assert [d["key"] for d in definitions.json()] == ["catalog-enrichment"]


async def test_agent_defaults_to_no_file_upload_and_default_model(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    response = await client.post(
        "/api/agents/",
        json={"name": "Tasks", "dataset_id": dataset.id, "agent_type": "structured-task"},
        headers=admin.headers,
    )

    assert response.status_code == 201
    assert response.json()["file_upload"] is False
    assert response.json()["model"] == {
        "name": None,
        "base_url": None,
        "api_key_env": None,
        "temperature": None,
    }


async def test_unknown_agent_type_is_400_listing_the_known_ones(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    response = await client.post(
        "/api/agents/",
        json={"name": "X", "dataset_id": dataset.id, "agent_type": "nope"},
        headers=admin.headers,
    )

    assert response.status_code == 400
    assert response.json() == {
        "agent_type": "Unknown agent type 'nope'. Known: catalog-enrichment, invoice-scanning, "
        "structured-task."
    }


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"dataset_id": 999}, {"dataset_id": "Dataset not found."}),
        ({"name": ""}, {"name": "String should have at least 1 character"}),
        (
            {"model": {"temperature": 5}},
            {"model.temperature": "Input should be less than or equal to 2"},
        ),
        ({"model": {"provider": "x"}}, {"model.provider": "Extra inputs are not permitted"}),
        ({"deleted": True}, {"deleted": "Extra inputs are not permitted"}),
    ],
)
async def test_an_invalid_agent_is_400_naming_the_field(
    client: AsyncClient, factory: Factory, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()
    body = {"name": "X", "dataset_id": dataset.id, "agent_type": "catalog-enrichment", **changes}

    response = await client.post("/api/agents/", json=body, headers=admin.headers)

    assert response.status_code == 400
    assert response.json() == errors
    assert (await client.get("/api/agents/", headers=admin.headers)).json() == []


async def test_users_see_only_agents_on_their_datasets(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    admin = await factory.account(admin=True)
    mine = await factory.agent(await factory.dataset(alice), name="Mine")
    theirs = await factory.agent(await factory.dataset(bob), name="Theirs")

    alice_list = await client.get("/api/agents/", headers=alice.headers)
    admin_list = await client.get("/api/agents/", headers=admin.headers)
    foreign = await client.get(f"/api/agents/{theirs.id}/", headers=alice.headers)
    missing = await client.get("/api/agents/999/", headers=alice.headers)
    own = await client.get(f"/api/agents/{mine.id}/", headers=alice.headers)

    assert [a["name"] for a in alice_list.json()] == ["Mine"]
    assert [a["id"] for a in admin_list.json()] == [mine.id, theirs.id]
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Agent not found."}
    assert own.status_code == 200
    assert own.json()["name"] == "Mine"


async def test_a_non_numeric_agent_id_is_400(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account()

    response = await client.get("/api/agents/abc/", headers=alice.headers)

    assert response.status_code == 400
    assert list(response.json()) == ["agent_id"]


async def test_admin_api_endpoints_are_documented(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    for path, method in [
        ("/api/users/me/", "get"),
        ("/api/datasets/", "post"),
        ("/api/datasets/", "get"),
        ("/api/datasets/{dataset_id}/members/", "post"),
        ("/api/datasets/{dataset_id}/products/", "post"),
        ("/api/datasets/{dataset_id}/products/", "get"),
        ("/api/agents/", "post"),
        ("/api/agents/", "get"),
        ("/api/agents/{agent_id}/", "get"),
        ("/api/datasets/{dataset_id}/members/{user_id}/", "delete"),
        ("/api/users/{user_id}/", "patch"),
        ("/api/tokens/", "get"),
        ("/api/tokens/{token_id}/", "delete"),
    ]:
        operation = schema["paths"][path][method]
        assert operation["summary"]
        assert operation["description"]
        assert "401" in operation["responses"]
    products_body = schema["paths"]["/api/datasets/{dataset_id}/products/"]["post"]["requestBody"]
    assert "sku" in products_body["content"]["application/json"]["schema"]["anyOf"][0]["properties"]

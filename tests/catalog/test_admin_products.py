"""Products: one object or a batch in, the same shape out, skus unique per dataset."""

import json
import re
from typing import Any

import pytest
from httpx import AsyncClient

from app.core.json_input import DEFAULT_MAX_JSON_DEPTH
from tests.factories import Factory

TIMESTAMP_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
# Deeper than pydantic-core serializes (its recursion limit is 255 levels) and than
# the input limit (AGENTRUN_MAX_JSON_DEPTH) lets in.
DEEPER_THAN_SERIALIZERS_GO = 300


async def test_posting_one_product_answers_one_product(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()
    product = {
        "sku": "SKU-1",
        "name": "Shirt",
        "description": "Linen.",
        "properties": {"color": "white", "sizes": ["S", "M"]},
    }

    response = await client.post(
        f"/api/datasets/{dataset.id}/products/", json=product, headers=admin.headers
    )

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in product} == product
    assert set(body) == {*product, "id", "created_at", "updated_at"}
    assert re.match(TIMESTAMP_PATTERN, body["created_at"])


async def test_posting_a_list_of_products_answers_a_list_and_they_list_by_sku(
    client: AsyncClient, factory: Factory
) -> None:
    admin, alice = await factory.account(admin=True), await factory.account()
    dataset = await factory.dataset(alice)
    url = f"/api/datasets/{dataset.id}/products/"

    created = await client.post(url, json=[{"sku": "B"}, {"sku": "A"}], headers=admin.headers)
    listed = await client.get(url, headers=alice.headers)

    assert created.status_code == 201
    assert [p["sku"] for p in created.json()] == ["B", "A"]
    assert listed.status_code == 200
    assert [p["sku"] for p in listed.json()] == ["A", "B"]
    assert listed.json()[0] == {
        "id": created.json()[1]["id"],
        "sku": "A",
        "name": "",
        "description": "",
        "properties": {},
        "created_at": created.json()[1]["created_at"],
        "updated_at": created.json()[1]["updated_at"],
    }


async def test_a_sku_already_in_the_dataset_rejects_the_whole_batch(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()
    await factory.product(dataset, "SKU-1")
    url = f"/api/datasets/{dataset.id}/products/"

    response = await client.post(
        url, json=[{"sku": "SKU-2"}, {"sku": "SKU-1"}], headers=admin.headers
    )

    assert response.status_code == 400
    assert "'SKU-1'" in response.json()["sku"]
    listed = await client.get(url, headers=admin.headers)
    assert [p["sku"] for p in listed.json()] == ["SKU-1"]


async def test_a_sku_repeated_in_the_request_is_400_and_writes_nothing(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()
    url = f"/api/datasets/{dataset.id}/products/"

    response = await client.post(
        url, json=[{"sku": "X"}, {"sku": "Y"}, {"sku": "X"}], headers=admin.headers
    )

    assert response.status_code == 400
    assert response.json() == {"sku": "Duplicate sku in the request: 'X'."}
    assert (await client.get(url, headers=admin.headers)).json() == []


async def test_the_same_sku_may_live_in_two_datasets(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True)
    first, second = await factory.dataset(), await factory.dataset()
    await factory.product(first, "SKU-1")

    response = await client.post(
        f"/api/datasets/{second.id}/products/", json={"sku": "SKU-1"}, headers=admin.headers
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": "No sku"}, {"sku": "Field required"}),
        ({"sku": "  "}, {"sku": "String should have at least 1 character"}),
        ({"sku": "A", "properties": [1]}, {"properties": "Input should be a valid dictionary"}),
        ({"sku": "A", "price": 3}, {"price": "Extra inputs are not permitted"}),
        ([{"sku": "A"}, {"name": "x"}], {"1.sku": "Field required"}),
        ("SKU-1", {"detail": "Input should be a valid dictionary or instance of ProductIn"}),
    ],
)
async def test_an_invalid_product_is_400_naming_the_field(
    client: AsyncClient, factory: Factory, body: Any, errors: dict[str, str]
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()
    url = f"/api/datasets/{dataset.id}/products/"

    response = await client.post(url, json=body, headers=admin.headers)

    assert response.status_code == 400
    assert response.json() == errors
    assert (await client.get(url, headers=admin.headers)).json() == []


async def test_products_body_that_is_not_json_is_400(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    response = await client.post(
        f"/api/datasets/{dataset.id}/products/",
        content=b"{sku",
        headers={**admin.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


async def test_products_of_an_unknown_dataset_are_404(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)

    posted = await client.post(
        "/api/datasets/999/products/", json={"sku": "A"}, headers=admin.headers
    )
    listed = await client.get("/api/datasets/999/products/", headers=admin.headers)

    assert posted.status_code == listed.status_code == 404
    assert posted.json() == listed.json() == {"detail": "Dataset not found."}


async def test_products_of_another_users_dataset_read_as_404(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    dataset = await factory.dataset(alice)
    await factory.product(dataset, "SECRET")

    response = await client.get(f"/api/datasets/{dataset.id}/products/", headers=bob.headers)

    assert response.status_code == 404
    assert response.json() == {"detail": "Dataset not found."}


async def test_a_product_stored_deeper_than_the_limits_does_not_break_the_list(
    client: AsyncClient, factory: Factory
) -> None:
    """Rows written before the depth limit existed (or by hand) still list."""
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()
    deep: Any = "leaf"
    for _ in range(DEEPER_THAN_SERIALIZERS_GO):
        deep = {"a": deep}
    await factory.product(dataset, "SKU-DEEP", properties={"nested": deep})
    await factory.product(dataset, "SKU-FLAT", properties={"color": "red"})

    response = await client.get(f"/api/datasets/{dataset.id}/products/", headers=admin.headers)

    assert response.status_code == 200, response.text
    listed = {p["sku"]: p for p in response.json()}
    assert listed["SKU-FLAT"]["properties"] == {"color": "red"}
    assert set(listed) == {"SKU-DEEP", "SKU-FLAT"}
    # Past the limit, the rest of the value is shown as its JSON text: nothing is lost.
    shown, levels = listed["SKU-DEEP"]["properties"]["nested"], 1
    while isinstance(shown, dict):
        shown, levels = shown["a"], levels + 1
    assert levels == DEFAULT_MAX_JSON_DEPTH
    rest = json.loads(shown)
    for _ in range(DEEPER_THAN_SERIALIZERS_GO - levels + 1):
        rest = rest["a"]
    assert rest == "leaf"

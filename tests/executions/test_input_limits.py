"""Limits on what a client's JSON may be: size, depth and numbers, at submit and in lists."""

import json
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Product
from app.core.config import Settings
from app.executions.models import AgenticExecution
from tests.factories import Account, Factory, client_with_settings

TASK = "structured-task"
FILE = {"files[]": ("a.txt", b"notes", "text/plain")}


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


def nested(levels: int) -> str:
    """JSON text of ``levels`` arrays, one in the other."""
    return "[" * levels + "]" * levels


def task_input(schema_json: str) -> str:
    return '{"instructions": "Summarise.", "output_schema": ' + schema_json + "}"


def json_body(input_json: str) -> str:
    return '{"execution_key": "structured-task", "input": ' + input_json + "}"


async def task_agent(factory: Factory) -> tuple[Account, int]:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type=TASK, file_upload=True)
    return alice, agent.id


async def stored_executions(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AgenticExecution)) or 0)


async def post_json(client: AsyncClient, alice: Account, agent_id: int, body: str) -> Any:
    return await client.post(
        url(agent_id), content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )


async def post_form(client: AsyncClient, alice: Account, agent_id: int, input_json: str) -> Any:
    return await client.post(
        url(agent_id),
        data={"execution_key": TASK, "input": input_json},
        files=FILE,
        headers=alice.headers,
    )


@pytest.mark.parametrize("levels", [100, 2000])
async def test_input_nested_too_deep_is_400_naming_the_limit(
    client: AsyncClient, factory: Factory, session: AsyncSession, levels: int
) -> None:
    alice, agent_id = await task_agent(factory)
    input_json = task_input('{"type": "object", "default": ' + nested(levels) + "}")

    as_json = await post_json(client, alice, agent_id, json_body(input_json))
    as_form = await post_form(client, alice, agent_id, input_json)

    assert as_json.status_code == as_form.status_code == 400
    limit = "the limit is 64 levels of arrays and objects"
    assert limit in json.dumps(as_json.json())
    [message] = as_form.json()["input"]
    assert limit in message
    assert await stored_executions(session) == 0


async def test_input_at_the_depth_limit_is_accepted(client: AsyncClient, factory: Factory) -> None:
    alice, agent_id = await task_agent(factory)
    # The input object, output_schema and "default": 3 levels, then 61 arrays.
    input_json = task_input('{"type": "array", "default": ' + nested(61) + "}")

    response = await post_json(client, alice, agent_id, json_body(input_json))

    assert response.status_code == 202
    assert response.json()["input"]["output_schema"]["default"] == json.loads(nested(61))


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
async def test_a_number_json_cannot_hold_is_400_naming_the_field(
    client: AsyncClient, factory: Factory, session: AsyncSession, number: str
) -> None:
    alice, agent_id = await task_agent(factory)
    input_json = task_input('{"type": "number", "maximum": ' + number + "}")

    as_json = await post_json(client, alice, agent_id, json_body(input_json))
    as_form = await post_form(client, alice, agent_id, input_json)

    assert as_json.status_code == as_form.status_code == 400
    assert as_json.json() == as_form.json()
    [field] = as_json.json()["input"]
    assert field == "output_schema.maximum"
    assert "Not a finite number" in as_json.json()["input"][field]
    assert await stored_executions(session) == 0


async def test_an_input_over_the_size_limit_is_413(
    settings: Settings, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await task_agent(factory)
    fits = task_input(json.dumps({"description": "x" * 800}))
    too_large = task_input(json.dumps({"description": "x" * 1100}))

    async with client_with_settings(settings, max_input_bytes=1000) as client:
        accepted = await post_json(client, alice, agent_id, json_body(fits))
        as_json = await post_json(client, alice, agent_id, json_body(too_large))
        as_form = await post_form(client, alice, agent_id, too_large)
        # A body far past the input limit is refused before it is read or parsed.
        huge_input = task_input("[" + "1," * 10**6 + "1]")
        huge = await post_json(client, alice, agent_id, json_body(huge_input))

    assert accepted.status_code == 202
    assert as_json.status_code == as_form.status_code == huge.status_code == 413
    [message] = as_json.json()["input"]
    assert message.endswith("the limit is 1000 bytes.")
    assert as_form.json()["input"][0].endswith("the limit is 1000 bytes.")
    assert huge.json()["detail"].startswith("Request body too large")
    assert await stored_executions(session) == 1


async def test_the_default_input_limit_is_256_kib(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await task_agent(factory)
    big = task_input(json.dumps({"description": "x" * (300 * 1024)}))

    as_json = await post_json(client, alice, agent_id, json_body(big))
    as_form = await post_form(client, alice, agent_id, big)

    assert as_json.status_code == as_form.status_code == 413
    assert await stored_executions(session) == 0


async def test_a_list_shows_a_marker_for_a_large_input_or_result_and_the_detail_shows_it_whole(
    settings: Settings, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type=TASK)
    large_input = {"instructions": "x" * 5000}
    large = await factory.execution(
        agent, alice, input=large_input, status="finished", result={"summary": "y" * 3000}
    )
    small = await factory.execution(agent, alice, input={"instructions": "Hi."})

    async with client_with_settings(settings, list_max_field_bytes=4000) as client:
        page = await client.get("/api/agentic-executions/", headers=alice.headers)
        detail = await client.get(f"/api/agentic-executions/{large.id}/", headers=alice.headers)
        # The marker's url is the execution's own page.
        shown = page.json()["results"]
        marker = shown[1]["input"]
        followed = await client.get(marker["url"], headers=alice.headers)

    assert [e["id"] for e in shown] == [small.id, large.id]
    assert shown[0]["input"] == {"instructions": "Hi."}
    assert marker == {
        "truncated": True,
        "url": f"http://testserver/api/agentic-executions/{large.id}/",
    }
    assert shown[1]["result"] == {"summary": "y" * 3000}
    assert detail.json()["input"] == followed.json()["input"] == large_input


async def test_a_list_bounds_each_result_too(settings: Settings, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type=TASK)
    execution = await factory.execution(
        agent, alice, input={"instructions": "Hi."}, status="finished", result=["z" * 70_000]
    )

    async with client_with_settings(settings) as client:
        page = await client.get("/api/agentic-executions/", headers=alice.headers)

    [shown] = page.json()["results"]
    assert shown["input"] == {"instructions": "Hi."}
    assert shown["result"] == {
        "truncated": True,
        "url": f"http://testserver/api/agentic-executions/{execution.id}/",
    }


def properties_nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_product_properties_nested_too_deep_are_400_and_nothing_is_written(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset(admin)
    products = f"/api/datasets/{dataset.id}/products/"
    fine = {"sku": "SKU-1", "properties": properties_nested(64)}

    # 300 levels were stored, and then no list of the dataset's products could be answered.
    past_the_parser = await client.post(
        products, json={"sku": "DEEP", "properties": properties_nested(300)}, headers=admin.headers
    )
    one = await client.post(
        products, json={"sku": "DEEP", "properties": properties_nested(150)}, headers=admin.headers
    )
    batch = await client.post(
        products, json=[fine, {"sku": "SKU-2", "properties": properties_nested(65)}],
        headers=admin.headers,
    )  # fmt: skip
    body_too_deep = await client.post(
        products,
        content='{"sku": "SKU-3", "properties": {"a": ' + nested(2000) + "}}",
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    not_finite = await client.post(
        products,
        content='{"sku": "SKU-4", "properties": {"weight": [1, NaN]}}',
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    accepted = await client.post(products, json=fine, headers=admin.headers)
    listed = await client.get(products, headers=admin.headers)

    limit = "Nested too deep: the limit is 64 levels of arrays and objects."
    assert past_the_parser.status_code == one.status_code == batch.status_code == 400
    assert body_too_deep.status_code == 400
    assert (
        past_the_parser.json() == body_too_deep.json() == {"detail": f"JSON parse error: {limit}"}
    )
    assert one.json() == {"properties": limit}
    assert batch.json() == {"1.properties": limit}
    assert not_finite.status_code == 400
    assert list(not_finite.json()) == ["properties.weight.1"]
    assert accepted.status_code == 201
    assert listed.status_code == 200
    assert [p["sku"] for p in listed.json()] == ["SKU-1"]
    assert await session.scalar(select(func.count()).select_from(Product)) == 1

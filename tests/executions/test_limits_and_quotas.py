"""Limits as clients and admins set them (start body, multipart form, agent) and the daily
quotas of a user (429 with the quota and its reset, counted again the next UTC day)."""

import json
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import utcnow
from app.executions.models import AgenticExecution
from tests.factories import Account, Factory

NO_LIMITS = {"max_model_requests": None, "max_total_tokens": None, "max_cost": None}
START = {"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-1"]}}


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def member_and_agent(factory: Factory, **agent: Any) -> tuple[Account, int]:
    alice = await factory.account()
    created = await factory.agent(await factory.dataset(alice), **agent)
    return alice, created.id


async def test_a_start_with_limits_stores_and_shows_them(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await member_and_agent(factory)
    limits = {"max_model_requests": 5, "max_total_tokens": 10000, "max_cost": 0.25}

    response = await client.post(
        url(agent_id), json={**START, "limits": limits}, headers=alice.headers
    )

    assert response.status_code == 202
    assert response.json()["limits"] == limits
    read = await client.get(
        f"/api/agentic-executions/{response.json()['id']}/", headers=alice.headers
    )
    assert read.json()["limits"] == limits


async def test_a_start_without_limits_shows_null(client: AsyncClient, factory: Factory) -> None:
    alice, agent_id = await member_and_agent(factory)

    response = await client.post(url(agent_id), json=START, headers=alice.headers)

    assert response.json()["limits"] is None


@pytest.mark.parametrize(
    ("limits", "errors"),
    [
        ({"max_tokens": 5}, {"max_tokens": "Extra inputs are not permitted"}),
        ({"max_model_requests": 0}, {"max_model_requests": "Input should be greater than 0"}),
        ({"max_total_tokens": -3}, {"max_total_tokens": "Input should be greater than 0"}),
        ({"max_cost": "0.5"}, {"max_cost": "Input should be a valid number"}),
        ({"max_model_requests": True}, {"max_model_requests": "Input should be a valid integer"}),
        ({"max_cost": 1e400}, {"max_cost": "Value error, Not a finite number."}),
        ([1], {"detail": "Expected a JSON object."}),
    ],
)  # fmt: skip
async def test_invalid_limits_are_400_naming_the_field(
    limits: Any, errors: dict[str, str], client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await member_and_agent(factory)

    response = await client.post(
        url(agent_id),
        content=json.dumps({**START, "limits": limits}).replace("Infinity", "1e400"),
        headers={**alice.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == {"limits": errors}


async def test_a_multipart_start_takes_limits_as_a_json_string(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await member_and_agent(factory, file_upload=True)

    response = await client.post(
        url(agent_id),
        data={
            "execution_key": "catalog-enrichment",
            "input": json.dumps(START["input"]),
            "limits": json.dumps({"max_cost": 0.5}),
        },
        files=[("files[]", ("a.txt", b"hello", "text/plain"))],
        headers=alice.headers,
    )

    assert response.status_code == 202
    assert response.json()["limits"] == {**NO_LIMITS, "max_cost": 0.5}
    refused = await client.post(
        url(agent_id),
        data={"execution_key": "catalog-enrichment", "limits": '{"max_cost": -1}'},
        files=[("files[]", ("a.txt", b"hello", "text/plain"))],
        headers=alice.headers,
    )
    assert refused.status_code == 400
    assert refused.json() == {"limits": {"max_cost": "Input should be greater than 0"}}


async def test_an_admin_sets_and_lifts_an_agents_limits(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, agent_id = await member_and_agent(factory)

    response = await client.put(
        f"/api/agents/{agent_id}/limits/",
        json={"max_model_requests": 10, "max_cost": 2},
        headers=admin.headers,
    )

    assert response.status_code == 200
    set_limits = {**NO_LIMITS, "max_model_requests": 10, "max_cost": 2.0}
    assert response.json()["limits"] == set_limits
    shown = await client.get(f"/api/agents/{agent_id}/", headers=alice.headers)
    assert shown.json()["limits"] == set_limits
    lifted = await client.put(f"/api/agents/{agent_id}/limits/", json={}, headers=admin.headers)
    assert lifted.json()["limits"] is None


async def test_agent_limits_are_for_admins_and_validated(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, agent_id = await member_and_agent(factory)

    as_member = await client.put(
        f"/api/agents/{agent_id}/limits/", json={"max_cost": 1}, headers=alice.headers
    )
    invalid = await client.put(
        f"/api/agents/{agent_id}/limits/", json={"max_cost": 0, "x": 1}, headers=admin.headers
    )
    missing = await client.put("/api/agents/999/limits/", json={}, headers=admin.headers)

    assert as_member.status_code == 403
    assert invalid.status_code == 400
    assert invalid.json() == {
        "max_cost": "Input should be greater than 0",
        "x": "Extra inputs are not permitted",
    }
    assert missing.status_code == 404


async def test_an_agent_created_with_limits_shows_them(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    response = await client.post(
        "/api/agents/",
        json={
            "name": "Frugal",
            "dataset_id": dataset.id,
            "agent_type": "catalog-enrichment",
            "limits": {"max_total_tokens": 5000},
        },
        headers=admin.headers,
    )

    assert response.status_code == 201
    assert response.json()["limits"] == {**NO_LIMITS, "max_total_tokens": 5000}


# Quotas


async def set_quotas(
    client: AsyncClient, factory: Factory, user: Account, **quotas: int | None
) -> dict[str, Any]:
    admin = await factory.account(admin=True)
    response = await client.put(
        f"/api/users/{user.user.id}/quotas/", json=quotas, headers=admin.headers
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def move_to_yesterday(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """The clock moved on a day: the executions so far were started yesterday."""
    async with sessionmaker() as session:
        await session.execute(
            update(AgenticExecution).values(
                started_at=AgenticExecution.started_at - timedelta(days=1)
            )
        )
        await session.commit()


async def test_a_start_past_the_executions_quota_is_429_until_the_next_day(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, agent_id = await member_and_agent(factory)
    await set_quotas(client, factory, alice, max_executions_per_day=2)
    for _ in range(2):
        started = await client.post(url(agent_id), json=START, headers=alice.headers)
        assert started.status_code == 202

    refused = await client.post(url(agent_id), json=START, headers=alice.headers)

    assert refused.status_code == 429
    body = refused.json()
    assert body["quota"] == "max_executions_per_day"
    assert (body["limit"], body["used"]) == (2, 2)
    assert "max_executions_per_day" in body["detail"]
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert body["resets_at"] == f"{tomorrow}T00:00:00Z"
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    await move_to_yesterday(sessionmaker)
    again = await client.post(url(agent_id), json=START, headers=alice.headers)
    assert again.status_code == 202


async def test_a_start_past_the_tokens_quota_is_429(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, agent_id = await member_and_agent(factory)
    agent = await factory.agent(await factory.dataset(alice))
    await factory.execution(
        agent, alice, usage={"requests": 2, "input_tokens": 900, "output_tokens": 100}
    )
    await set_quotas(client, factory, alice, max_tokens_per_day=1000)

    refused = await client.post(url(agent_id), json=START, headers=alice.headers)

    assert refused.status_code == 429
    assert refused.json()["quota"] == "max_tokens_per_day"
    assert "1000 tokens of 1000" in refused.json()["detail"]
    await move_to_yesterday(sessionmaker)
    assert (await client.post(url(agent_id), json=START, headers=alice.headers)).status_code == 202


async def test_a_repeat_with_the_same_idempotency_key_is_not_counted_against_the_quota(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await member_and_agent(factory)
    await set_quotas(client, factory, alice, max_executions_per_day=1)
    headers = {**alice.headers, "Idempotency-Key": "k-1"}

    first = await client.post(url(agent_id), json=START, headers=headers)
    repeat = await client.post(url(agent_id), json=START, headers=headers)

    assert (first.status_code, repeat.status_code) == (202, 202)
    assert repeat.json()["id"] == first.json()["id"]


async def test_quotas_are_shown_with_todays_use_and_other_users_are_not_held(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await member_and_agent(factory)
    bob = await factory.account()
    await set_quotas(client, factory, alice, max_executions_per_day=1, max_tokens_per_day=None)
    await client.post(url(agent_id), json=START, headers=alice.headers)

    mine = await client.get("/api/users/me/quotas/", headers=alice.headers)
    others = await client.get("/api/users/me/quotas/", headers=bob.headers)

    assert mine.json()["max_executions_per_day"] == 1
    assert mine.json()["used_today"] == {"executions": 1, "tokens": 0}
    assert others.json()["max_executions_per_day"] is None


async def test_quotas_are_set_by_admins_only_and_validated(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice = await factory.account()

    as_user = await client.put(
        f"/api/users/{alice.user.id}/quotas/",
        json={"max_executions_per_day": 5},
        headers=alice.headers,
    )
    invalid = await client.put(
        f"/api/users/{alice.user.id}/quotas/",
        json={"max_executions_per_day": 0, "per_hour": 1},
        headers=admin.headers,
    )
    missing = await client.put("/api/users/999/quotas/", json={}, headers=admin.headers)

    assert as_user.status_code == 403
    assert invalid.status_code == 400
    assert set(invalid.json()) == {"max_executions_per_day", "per_hour"}
    assert missing.status_code == 404

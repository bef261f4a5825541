"""POST /api/agents/{id}/agentic-executions/ with JSON bodies, as the contract shows."""

import re

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.executions.models import AgenticExecution
from tests.factories import Factory

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CONTRACT_INPUT = {
    "additional_instructions": "Focus on products missing a description.",
    "skus": ["SKU-001", "SKU-002"],
}


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def test_start_answers_202_with_the_contracts_fields_and_queues_the_job(
    client: AsyncClient, factory: Factory, queue: ArqRedis
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    response = await client.post(
        url(agent.id),
        json={"execution_key": "catalog-enrichment", "input": CONTRACT_INPUT},
        headers=alice.headers,
    )

    assert response.status_code == 202
    body = response.json()
    assert list(body) == [
        "id", "agent", "execution_key", "conversation", "status", "input", "result",
        "failure_code", "failure_explanation", "celery_task_id", "started_at", "finished_at",
        "duration_seconds", "files", "definition_version", "usage", "limits", "retry_of",
        "resume_from", "retried_by", "batch_id", "schedule_id", "trace_id",
    ]  # fmt: skip
    assert body["agent"] == agent.id
    assert body["execution_key"] == "catalog-enrichment"
    assert body["status"] == "pending"
    assert body["input"] == CONTRACT_INPUT
    assert body["result"] is body["failure_code"] is body["failure_explanation"] is None
    assert body["finished_at"] is body["duration_seconds"] is None
    assert TIMESTAMP.match(body["started_at"])
    assert body["files"] == []
    assert body["celery_task_id"] == f"execution:{body['id']}"
    job = Job(body["celery_task_id"], queue, _queue_name=factory.settings.queue_name)
    assert await job.status() == JobStatus.queued
    assert (await job.info()).args == (body["id"],)  # type: ignore[union-attr]


async def test_start_stores_input_with_defaults_filled_in(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    given = await client.post(
        url(agent.id),
        json={"execution_key": "catalog-enrichment", "input": {"skus": ["A"]}},
        headers=alice.headers,
    )
    missing = await client.post(
        url(agent.id), json={"execution_key": "catalog-enrichment"}, headers=alice.headers
    )

    assert given.json()["input"] == {"additional_instructions": None, "skus": ["A"]}
    assert missing.status_code == 202
    assert missing.json()["input"] == {"additional_instructions": None, "skus": None}


async def test_start_with_invalid_input_is_400_naming_each_field_and_stores_nothing(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    cases = {
        "wrong type": ({"skus": "SKU-001"}, {"input": {"skus": "Input should be a valid list"}}),
        "nested": ({"skus": ["ok", 3]}, {"input": {"skus.1": "Input should be a valid string"}}),
        "extra": ({"colour": "red"}, {"input": {"colour": "Extra inputs are not permitted"}}),
        "not an object": (["SKU-001"], {"input": ["Expected a JSON object."]}),
    }
    for name, (given, expected) in cases.items():
        response = await client.post(
            url(agent.id),
            json={"execution_key": "catalog-enrichment", "input": given},
            headers=alice.headers,
        )
        assert response.status_code == 400, name
        assert response.json() == expected, name

    assert await session.scalar(select(func.count()).select_from(AgenticExecution)) == 0


async def test_start_with_a_required_field_missing_says_field_required(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")

    response = await client.post(
        url(agent.id), json={"execution_key": "structured-task", "input": {}}, headers=alice.headers
    )

    assert response.status_code == 400
    assert response.json() == {"input": {"instructions": "Field required"}}


async def test_start_with_unknown_key_or_another_agent_types_key_is_400(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    for key in ("no-such-key", "structured-task"):
        response = await client.post(
            url(agent.id), json={"execution_key": key, "input": {}}, headers=alice.headers
        )
        assert response.status_code == 400
        assert key in response.json()["detail"]
        assert "catalog-enrichment" in response.json()["detail"]


async def test_start_with_a_malformed_body_is_400(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Content-Type": "application/json"}

    not_json = await client.post(url(agent.id), content=b"{oops", headers=headers)
    no_key = await client.post(url(agent.id), json={"input": {}}, headers=alice.headers)
    not_an_object = await client.post(url(agent.id), json=[1], headers=alice.headers)

    assert not_json.status_code == no_key.status_code == not_an_object.status_code == 400
    assert "JSON" in not_json.json()["detail"]
    assert no_key.json()["execution_key"] == ["This field is required."]
    assert "execution_key" in not_an_object.json()["detail"]


async def test_start_with_another_content_type_is_415(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    response = await client.post(
        url(agent.id),
        content=b"execution_key=catalog-enrichment",
        headers={**alice.headers, "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


async def test_start_on_an_unknown_or_foreign_agent_is_404(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    body = {"execution_key": "catalog-enrichment", "input": {}}

    missing = await client.post(url(999), json=body, headers=alice.headers)
    foreign = await client.post(url(agent.id), json=body, headers=bob.headers)
    non_numeric = await client.post("/api/agents/abc/agentic-executions/", json=body,
                                    headers=alice.headers)  # fmt: skip

    assert missing.status_code == foreign.status_code == 404
    assert missing.json() == foreign.json() == {"detail": "Agent not found."}
    assert non_numeric.status_code == 400
    assert "agent_id" in non_numeric.json()


async def test_start_on_a_deleted_agent_is_404(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    agent.deleted = True
    await session.merge(agent)
    await session.commit()

    response = await client.post(
        url(agent.id), json={"execution_key": "catalog-enrichment"}, headers=alice.headers
    )

    assert response.status_code == 404


async def test_start_without_a_token_is_401(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    response = await client.post(url(agent.id), json={"execution_key": "catalog-enrichment"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"

"""Idempotency-Key on POST /api/agents/{id}/agentic-executions/: retries start nothing new."""

import asyncio
from datetime import timedelta

from arq.connections import ArqRedis
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.executions.models import AgenticExecution
from tests.factories import Factory

BODY = {"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-001"]}}


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def executions_stored(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(AgenticExecution)) or 0


async def test_a_repeat_with_the_same_key_answers_the_first_execution(
    client: AsyncClient, factory: Factory, session: AsyncSession, queue: ArqRedis
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Idempotency-Key": "order-42"}

    first = await client.post(url(agent.id), json=BODY, headers=headers)
    repeat = await client.post(url(agent.id), json=BODY, headers=headers)

    assert first.status_code == repeat.status_code == 202
    assert repeat.json() == first.json()
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await executions_stored(session) == 1
    assert await queue.zcard(factory.settings.queue_name) == 1


async def test_a_repeat_shows_the_executions_current_state(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Idempotency-Key": "k1"}
    first = (await client.post(url(agent.id), json=BODY, headers=headers)).json()
    await session.execute(
        update(AgenticExecution)
        .where(AgenticExecution.id == first["id"])
        .values(status="in_progress")
    )
    await session.commit()

    repeat = await client.post(url(agent.id), json=BODY, headers=headers)

    assert repeat.status_code == 202
    assert repeat.json()["id"] == first["id"]
    assert repeat.json()["status"] == "in_progress"


async def test_the_same_key_with_a_different_body_is_409(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Idempotency-Key": "k1"}
    await client.post(url(agent.id), json=BODY, headers=headers)

    other = {"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-002"]}}
    response = await client.post(url(agent.id), json=other, headers=headers)

    assert response.status_code == 409
    assert "Idempotency-Key 'k1' was used" in response.json()["detail"]
    assert "different request" in response.json()["detail"]
    assert await executions_stored(session) == 1


async def test_input_equal_after_defaults_counts_as_the_same_request(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Idempotency-Key": "k1"}

    first = await client.post(
        url(agent.id), json={"execution_key": "catalog-enrichment"}, headers=headers
    )
    repeat = await client.post(
        url(agent.id),
        json={"execution_key": "catalog-enrichment", "input": {"skus": None}},
        headers=headers,
    )

    assert repeat.status_code == 202
    assert repeat.json()["id"] == first.json()["id"]


async def test_keys_are_per_user(client: AsyncClient, factory: Factory) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice, bob))

    mine = await client.post(
        url(agent.id), json=BODY, headers={**alice.headers, "Idempotency-Key": "same"}
    )
    theirs = await client.post(
        url(agent.id), json=BODY, headers={**bob.headers, "Idempotency-Key": "same"}
    )

    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def test_concurrent_repeats_start_one_execution(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Idempotency-Key": "burst"}

    responses = await asyncio.gather(
        *(client.post(url(agent.id), json=BODY, headers=headers) for _ in range(10))
    )

    assert {response.status_code for response in responses} == {202}
    assert len({response.json()["id"] for response in responses}) == 1
    assert await executions_stored(session) == 1


async def test_a_key_over_255_characters_is_400(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    response = await client.post(
        url(agent.id), json=BODY, headers={**alice.headers, "Idempotency-Key": "k" * 256}
    )

    assert response.status_code == 400
    [message] = response.json()["Idempotency-Key"]
    assert "255" in message


async def test_a_key_older_than_24_hours_starts_a_new_execution(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    headers = {**alice.headers, "Idempotency-Key": "daily"}
    first = (await client.post(url(agent.id), json=BODY, headers=headers)).json()
    await session.execute(
        update(AgenticExecution)
        .where(AgenticExecution.id == first["id"])
        .values(started_at=AgenticExecution.started_at - timedelta(hours=24, seconds=1))
    )
    await session.commit()

    other = {"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-009"]}}
    later = await client.post(url(agent.id), json=other, headers=headers)
    repeat = await client.post(url(agent.id), json=other, headers=headers)

    assert later.status_code == 202
    assert later.json()["id"] != first["id"]
    assert repeat.json()["id"] == later.json()["id"]
    assert await executions_stored(session) == 2


async def test_a_repeat_with_the_same_file_answers_the_first_and_another_file_is_409(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    headers = {**alice.headers, "Idempotency-Key": "upload-1"}
    form = {"execution_key": "catalog-enrichment", "input": '{"skus": ["A"]}'}

    def files(text: bytes) -> dict[str, tuple[str, bytes, str]]:
        return {"files[]": ("notes.txt", text, "text/plain")}

    first = await client.post(url(agent.id), data=form, files=files(b"v1"), headers=headers)
    repeat = await client.post(url(agent.id), data=form, files=files(b"v1"), headers=headers)
    changed = await client.post(url(agent.id), data=form, files=files(b"v2"), headers=headers)

    assert first.status_code == repeat.status_code == 202
    assert repeat.json() == first.json()
    assert changed.status_code == 409
    assert await executions_stored(session) == 1
    stored = list((factory.settings.media_root / "conversations").rglob("*.txt"))
    assert len(stored) == 1

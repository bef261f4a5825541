"""A batch's Idempotency-Key past its window and reused for another batch: the same rules as a
start's (app.executions.start_store.IdempotencyKeys), in the batch's words."""

from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.batches.models import AgenticExecutionBatch
from tests.batches.test_batches import KEY, items, owner_and_agent, stored, submit_url
from tests.factories import Factory


async def test_a_key_used_for_another_batch_is_409_naming_the_first_batch(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    headers = {**alice.headers, "Idempotency-Key": "nightly"}
    first = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": items(2)}, headers=headers
    )

    other = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": items(3)}, headers=headers
    )

    assert other.status_code == 409
    assert other.json()["detail"] == (
        "Idempotency-Key 'nightly' was used in the last 24 hours for a different batch "
        f"({first.json()['id']}); send a new key for a new request."
    )
    assert await stored(session) == (1, 2, 2)


async def test_a_key_older_than_24_hours_submits_a_new_batch(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    headers = {**alice.headers, "Idempotency-Key": "nightly"}
    body = {"execution_key": KEY, "items": items(2)}
    first = (await client.post(submit_url(agent_id), json=body, headers=headers)).json()
    await session.execute(
        update(AgenticExecutionBatch)
        .where(AgenticExecutionBatch.id == first["id"])
        .values(created_at=AgenticExecutionBatch.created_at - timedelta(hours=24, seconds=1))
    )
    await session.commit()

    other = {"execution_key": KEY, "items": items(3)}
    later = await client.post(submit_url(agent_id), json=other, headers=headers)
    repeat = await client.post(submit_url(agent_id), json=other, headers=headers)

    assert later.status_code == repeat.status_code == 202
    assert later.json()["id"] != first["id"]
    assert repeat.json()["id"] == later.json()["id"]
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert await stored(session) == (2, 5, 5)

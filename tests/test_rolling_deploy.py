"""During a rolling deploy the previous release runs against the new schema: its writes must work.

deploy/README.md: a migration keeps the previous release's reads and writes working (expand,
then contract in a later release). These are the statements the previous release sends,
written literally, run against the database at head.
"""

from datetime import UTC, datetime

import asyncpg
from httpx import AsyncClient

from tests.factories import Factory

# What the release before migration 0005 (revision 0004: commit 94f9918, the parent of
# 518a2b0 that added dataset_id) sends to start an execution, captured from its SQLAlchemy
# session on asyncpg: the conversation, the execution (without dataset_id), its job id.
PREVIOUS_RELEASE_START_EXECUTION = (
    "INSERT INTO conversations (agent_id, user_id, locked, created_at) VALUES ($1::INTEGER, "
    "$2::INTEGER, $3::BOOLEAN, $4::TIMESTAMP WITH TIME ZONE) RETURNING conversations.id",
    "INSERT INTO agentic_executions (agent_id, user_id, execution_key, conversation_id, status, "
    "input, failure_code, failure_explanation, job_id, attempts, started_at, finished_at, "
    "idempotency_key, request_sha256, cancel_requested_at, cancel_requested_by, heartbeat_at) "
    "VALUES ($1::INTEGER, $2::INTEGER, $3::VARCHAR, $4::INTEGER, $5::VARCHAR, $6::JSONB, "
    "$7::VARCHAR, $8::VARCHAR, $9::VARCHAR, $10::INTEGER, $11::TIMESTAMP WITH TIME ZONE, "
    "$12::TIMESTAMP WITH TIME ZONE, $13::VARCHAR, $14::VARCHAR, $15::TIMESTAMP WITH TIME ZONE, "
    "$16::VARCHAR, $17::TIMESTAMP WITH TIME ZONE) RETURNING agentic_executions.id",
    "UPDATE agentic_executions SET job_id=$1::VARCHAR WHERE agentic_executions.id = $2::INTEGER",
)


async def test_the_previous_release_can_start_an_execution_listed_by_its_dataset(
    database_url: str, factory: Factory, client: AsyncClient
) -> None:
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    agent = await factory.agent(dataset, agent_type="structured-task")
    now = datetime.now(UTC)
    conversation_sql, execution_sql, job_sql = PREVIOUS_RELEASE_START_EXECUTION

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        async with connection.transaction():
            conversation_id = await connection.fetchval(
                conversation_sql, agent.id, owner.user.id, True, now
            )
            execution_id = await connection.fetchval(
                execution_sql,
                agent.id, owner.user.id, "structured-task", conversation_id, "pending",
                '{"instructions": "Hi.", "output_schema": null}',
                None, None, None, 0, now, None, None, "0" * 64, None, None, None,
            )  # fmt: skip
            await connection.execute(job_sql, f"execution:{execution_id}", execution_id)
    finally:
        await connection.close()

    response = await client.get(
        "/api/agentic-executions/", params={"dataset_id": dataset.id}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["results"]] == [execution_id]

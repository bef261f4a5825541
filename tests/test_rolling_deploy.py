"""During a rolling deploy the previous release runs against the new schema: its writes must work.

deploy/README.md: a migration keeps the previous release's reads and writes working (expand,
then contract in a later release). These are the statements the previous release sends,
written literally, run against the database at head.
"""

from datetime import UTC, datetime, timedelta

import asyncpg
from httpx import AsyncClient

from tests.factories import Account, Factory

# What the release before migration 0024 sends (captured from its SQLAlchemy engine on asyncpg
# at commit 829b3be; the statements are the same through 87ec1aa). It no longer wrote or read
# agentic_executions.job_id (its mapping deferred with raiseload), which 0024 drops: none of
# these names it.
#
# Its start: the execution and its conversation in one statement (app/executions/repository.py).
PREVIOUS_RELEASE_START_EXECUTION = (
    "WITH conversation AS \n(INSERT INTO conversations (agent_id, user_id, locked, created_at) "
    "VALUES ($1::INTEGER, $2::INTEGER, $6::BOOLEAN, $7::TIMESTAMP WITH TIME ZONE) RETURNING "
    "conversations.id)\n INSERT INTO agentic_executions (agent_id, user_id, dataset_id, "
    "execution_key, definition_version, conversation_id, status, input, attempts, limits, "
    "retry_of_id, resume_from_id, started_at, idempotency_key, request_sha256) VALUES "
    "($1::INTEGER, $2::INTEGER, $3::INTEGER, $4::VARCHAR, $5::VARCHAR, (SELECT conversation.id "
    "\nFROM conversation), $8::VARCHAR, $9::JSONB, $10::INTEGER, $11::JSONB, $12::INTEGER, "
    "$13::INTEGER, $7::TIMESTAMP WITH TIME ZONE, $14::VARCHAR, $15::VARCHAR) RETURNING "
    "agentic_executions.id, agentic_executions.conversation_id"
)
# Its worker's claim of an execution that is not simply pending (workers/run/claim.py
# claim_execution): the execution and its agent as ORM entities, every column mapped then.
PREVIOUS_RELEASE_CLAIM_SELECT = (
    "SELECT agentic_executions.id, agentic_executions.agent_id, agentic_executions.user_id, "
    "agentic_executions.dataset_id, agentic_executions.execution_key, "
    "agentic_executions.definition_version, agentic_executions.conversation_id, "
    "agentic_executions.status, agentic_executions.input, agentic_executions.result, "
    "agentic_executions.failure_code, agentic_executions.failure_explanation, "
    "agentic_executions.attempts, agentic_executions.usage, agentic_executions.limits, "
    "agentic_executions.retry_of_id, agentic_executions.resume_from_id, "
    "agentic_executions.started_at, agentic_executions.finished_at, "
    "agentic_executions.idempotency_key, agentic_executions.request_sha256, "
    "agentic_executions.cancel_requested_at, agentic_executions.cancel_requested_by, "
    "agentic_executions.heartbeat_at, agents.id AS id_1, agents.dataset_id AS dataset_id_1, "
    "agents.name, agents.agent_type, agents.file_upload, agents.model_settings, agents.limits "
    "AS limits_1, agents.deleted, agents.deleted_at, agents.created_at, "
    "agentic_executions.heartbeat_at IS NULL OR agentic_executions.heartbeat_at < now() - "
    "$1::INTERVAL AS anon_1 \nFROM agentic_executions JOIN agents ON agents.id = "
    "agentic_executions.agent_id \nWHERE agentic_executions.id = $2::INTEGER"
)
# Its worker's claim of a pending execution (workers/run/claim.py claim_pending), one statement.
PREVIOUS_RELEASE_CLAIM_PENDING = (
    "UPDATE agentic_executions SET status=$1::VARCHAR, attempts=(agentic_executions.attempts + "
    "$2::INTEGER), heartbeat_at=now() FROM agents WHERE agentic_executions.id = $3::INTEGER AND "
    "agentic_executions.status = $4::VARCHAR AND agents.id = agentic_executions.agent_id "
    "RETURNING agentic_executions.execution_key, agentic_executions.input, "
    "agentic_executions.user_id, agentic_executions.conversation_id, "
    "agentic_executions.started_at, agentic_executions.attempts, agents.id, agents.agent_type, "
    "agents.dataset_id, agents.model_settings, (SELECT coalesce(json_agg(json_build_array("
    "conversation_files.filename, conversation_files.content_type, conversation_files.size, "
    "conversation_files.storage_key) ORDER BY conversation_files.id), json_build_array()) AS "
    "coalesce_1 \nFROM conversation_files \nWHERE conversation_files.conversation_id = "
    "agentic_executions.conversation_id) AS anon_1, agents.limits, agentic_executions.limits AS "
    "limits_1, agentic_executions.resume_from_id"
)
INPUT = '{"instructions": "Hi.", "output_schema": null}'


async def previous_release_connection(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(database_url.replace("+asyncpg", ""))


async def previous_release_start(
    database_url: str, owner: Account, agent_id: int, dataset_id: int
) -> int:
    """Start an execution as the previous release does; its id."""
    parameters = (
        agent_id, owner.user.id, dataset_id, "structured-task", "1.0.0", True, datetime.now(UTC),
        "pending", INPUT, 0, "null", None, None, None, "0" * 64,
    )  # fmt: skip
    connection = await previous_release_connection(database_url)
    try:
        return int(await connection.fetchval(PREVIOUS_RELEASE_START_EXECUTION, *parameters))
    finally:
        await connection.close()


async def test_the_previous_release_can_start_an_execution_listed_by_its_dataset(
    database_url: str, factory: Factory, client: AsyncClient
) -> None:
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    agent = await factory.agent(dataset, agent_type="structured-task")

    execution_id = await previous_release_start(database_url, owner, agent.id, dataset.id)

    response = await client.get(
        "/api/agentic-executions/", params={"dataset_id": dataset.id}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    [listed] = response.json()["results"]
    assert (listed["id"], listed["status"], listed["input"]) == (
        execution_id,
        "pending",
        {"instructions": "Hi.", "output_schema": None},
    )
    assert listed["celery_task_id"] == f"execution:{execution_id}"


async def test_the_previous_release_workers_can_claim_executions(
    database_url: str, factory: Factory, client: AsyncClient
) -> None:
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    agent = await factory.agent(dataset, agent_type="structured-task")
    started = [
        await client.post(
            f"/api/agents/{agent.id}/agentic-executions/",
            json={"execution_key": "structured-task", "input": {"instructions": "Hi."}},
            headers=owner.headers,
        )
        for _ in range(2)
    ]
    first, second = [response.json()["id"] for response in started]

    connection = await previous_release_connection(database_url)
    try:
        claimed = await connection.fetchrow(
            PREVIOUS_RELEASE_CLAIM_PENDING, "in_progress", 1, first, "pending"
        )
        async with connection.transaction():
            looked_at = await connection.fetchrow(
                PREVIOUS_RELEASE_CLAIM_SELECT, timedelta(seconds=30), second
            )
    finally:
        await connection.close()

    assert claimed is not None
    assert (claimed["execution_key"], claimed["attempts"]) == ("structured-task", 1)
    assert looked_at is not None
    assert (looked_at["id"], looked_at["status"], looked_at["agent_type"]) == (
        second,
        "pending",
        "structured-task",
    )
    shown = await client.get(f"/api/agentic-executions/{first}/", headers=owner.headers)
    assert shown.json()["status"] == "in_progress"

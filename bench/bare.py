"""The bare submit endpoint: the least a submit endpoint must do, the submit scenario's baseline.

One route that parses the same JSON body, does one INSERT into a table shaped like
``agentic_executions`` and one arq enqueue. No auth, asyncpg without an ORM. A second route,
``ROWS_PATH``, does the same but writes the rows a real execution has (its conversation and
the execution, in the service's own tables with their indexes and foreign keys): what the
schema costs, apart from what the service's code does. Both are served two ways (see
bench/README.md):

- ``bench.bare_app:app``: mounted on the real application, in the API's own process, behind its
  middleware and server: the baseline the issue asks for;
- ``bench.floor_app:app``: alone in a plain FastAPI app with no middleware: the floor.

Both are configured by the harness through BENCH_BARE_DSN (a plain ``postgresql://`` DSN),
BENCH_BARE_REDIS_URL and BENCH_BARE_QUEUE, and open their connections with ``bare_backend``.
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

TABLE = "bench_bare_executions"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    agent_id integer NOT NULL,
    execution_key varchar(100) NOT NULL,
    status varchar(16) NOT NULL,
    input jsonb NOT NULL,
    started_at timestamptz NOT NULL
)
"""
INSERT = f"""
INSERT INTO {TABLE} (agent_id, execution_key, status, input, started_at)
VALUES ($1, $2, 'pending', $3::jsonb, now())
RETURNING id, started_at
"""
# The rows of a real execution (its conversation, then the execution) for an agent of the
# benchmark's dataset, owned by its first user: no auth, no validation, no idempotency key.
INSERT_ROWS = """
WITH conversation AS (
    INSERT INTO conversations (agent_id, user_id, locked, created_at)
    VALUES ($1, $4, true, now())
    RETURNING id
)
INSERT INTO agentic_executions (
    agent_id, user_id, dataset_id, execution_key, conversation_id, status, input, attempts,
    started_at
)
VALUES ($1, $4, $5, $2, (SELECT id FROM conversation), 'pending', $3::jsonb, 0, now())
RETURNING id, started_at
"""
OWNER = "SELECT id FROM users ORDER BY id LIMIT 1"
DATASETS = "SELECT id, dataset_id FROM agents"
# As many connections as the API may open (its pool size plus as many on overflow).
POOL_SIZE = 20
PATH = "/bare/agents/{agent_id}/agentic-executions/"
ROWS_PATH = "/bare-rows/agents/{agent_id}/agentic-executions/"


class StartBody(BaseModel):
    execution_key: str
    input: dict[str, Any] = {}


class Started(BaseModel):
    id: int
    agent: int
    execution_key: str
    status: str
    input: dict[str, Any]
    celery_task_id: str
    started_at: datetime


@dataclass(frozen=True)
class BareBackend:
    pool: Any  # asyncpg.Pool (asyncpg has no type hints)
    queue: ArqRedis
    # For ROWS_PATH: the owner of its executions, and each agent's dataset.
    owner: int | None
    datasets: dict[int, int]


@asynccontextmanager
async def bare_backend(app: FastAPI) -> AsyncIterator[None]:
    """Open the endpoint's pool and queue as ``app.state.bare`` (its own attribute: the real
    application keeps its own pool and queue on ``app.state``), create its table; close both."""
    pool = await asyncpg.create_pool(
        os.environ["BENCH_BARE_DSN"], min_size=POOL_SIZE, max_size=POOL_SIZE
    )
    try:
        async with pool.acquire() as connection:
            await connection.execute(CREATE_TABLE)
            owner = await connection.fetchval(OWNER)
            datasets = dict(await connection.fetch(DATASETS))
        queue = ArqRedis.from_url(os.environ["BENCH_BARE_REDIS_URL"])
        queue.default_queue_name = os.environ["BENCH_BARE_QUEUE"]
        app.state.bare = BareBackend(pool, queue, owner, datasets)
        try:
            yield
        finally:
            await queue.aclose()
    finally:
        await pool.close()


router = APIRouter()


@router.post(PATH, status_code=202)
async def start(agent_id: int, body: StartBody, request: Request) -> Started:
    backend: BareBackend = request.app.state.bare
    async with backend.pool.acquire() as connection:
        row = await connection.fetchrow(
            INSERT, agent_id, body.execution_key, json.dumps(body.input)
        )
    return await _enqueued(backend, agent_id, body, row)


@router.post(ROWS_PATH, status_code=202)
async def start_rows(agent_id: int, body: StartBody, request: Request) -> Started:
    backend: BareBackend = request.app.state.bare
    async with backend.pool.acquire() as connection:
        row = await connection.fetchrow(
            INSERT_ROWS,
            agent_id,
            body.execution_key,
            json.dumps(body.input),
            backend.owner,
            backend.datasets[agent_id],
        )
    return await _enqueued(backend, agent_id, body, row)


async def _enqueued(backend: BareBackend, agent_id: int, body: StartBody, row: Any) -> Started:
    job_id = f"execution:{row['id']}"
    await backend.queue.enqueue_job("run_execution", row["id"], _job_id=job_id)
    return Started(
        id=row["id"],
        agent=agent_id,
        execution_key=body.execution_key,
        status="pending",
        input=body.input,
        celery_task_id=job_id,
        started_at=row["started_at"],
    )

"""The bare submit endpoint: the least a submit endpoint must do, the submit scenario's baseline.

One route that parses the same JSON body, does one INSERT into a table shaped like
``agentic_executions`` and one arq enqueue. No auth, asyncpg without an ORM. It is served two
ways (see bench/README.md):

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
    job_id varchar(200),
    started_at timestamptz NOT NULL
)
"""
INSERT = f"""
INSERT INTO {TABLE} (agent_id, execution_key, status, input, started_at)
VALUES ($1, $2, 'pending', $3::jsonb, now())
RETURNING id, started_at
"""
# As many connections as the API may open (its pool size plus as many on overflow).
POOL_SIZE = 20
PATH = "/bare/agents/{agent_id}/agentic-executions/"


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
        queue = ArqRedis.from_url(os.environ["BENCH_BARE_REDIS_URL"])
        queue.default_queue_name = os.environ["BENCH_BARE_QUEUE"]
        app.state.bare = BareBackend(pool, queue)
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

"""The baseline of the submit scenario: the least a submit endpoint must do.

One FastAPI route that parses the same JSON body, does one INSERT into a table shaped like
``agentic_executions`` and one arq enqueue, served by the same kind of uvicorn process as the
API (``uvicorn bench.bare_app:app``). No auth, no middleware, asyncpg without an ORM: the
floor our endpoint is compared with.

Configured by the harness through BENCH_BARE_DSN (a plain ``postgresql://`` DSN),
BENCH_BARE_REDIS_URL and BENCH_BARE_QUEUE.
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from arq.connections import ArqRedis
from fastapi import FastAPI, Request
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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_BARE_DSN"], min_size=POOL_SIZE, max_size=POOL_SIZE
    )
    async with app.state.pool.acquire() as connection:
        await connection.execute(CREATE_TABLE)
    app.state.queue = ArqRedis.from_url(os.environ["BENCH_BARE_REDIS_URL"])
    app.state.queue.default_queue_name = os.environ["BENCH_BARE_QUEUE"]
    try:
        yield
    finally:
        await app.state.queue.aclose()
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/bare/agents/{agent_id}/agentic-executions/", status_code=202)
async def start(agent_id: int, body: StartBody, request: Request) -> Started:
    async with request.app.state.pool.acquire() as connection:
        row = await connection.fetchrow(
            INSERT, agent_id, body.execution_key, json.dumps(body.input)
        )
    job_id = f"execution:{row['id']}"
    await request.app.state.queue.enqueue_job("run_execution", row["id"], _job_id=job_id)
    return Started(
        id=row["id"],
        agent=agent_id,
        execution_key=body.execution_key,
        status="pending",
        input=body.input,
        celery_task_id=job_id,
        started_at=row["started_at"],
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

"""Waiting for what an SDK client started, and scripting how it ends."""

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.executions.models import AgenticExecution

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
TASK_INPUT = {"instructions": "Describe Ada.", "output_schema": PERSON}


async def execution_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(AgenticExecution)) or 0)


async def next_execution(
    sessionmaker: async_sessionmaker[AsyncSession], after: int = 0
) -> AgenticExecution:
    """The first execution with an id over ``after``, once a client has stored it (10 s at most)."""
    for _ in range(200):
        async with sessionmaker() as session:
            found = await session.scalar(
                select(AgenticExecution)
                .where(AgenticExecution.id > after)
                .order_by(AgenticExecution.id)
                .limit(1)
            )
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no execution was started")

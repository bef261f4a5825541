"""Scripted models (agentrun.testing's, the plugin authors' own), a handle on the worker's job,
and reading back the outcome."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.connections import ArqRedis
from pydantic_ai.models import Model
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentrun.testing import Script, Step, answer, call
from app.conversations.models import Message
from app.core.config import Settings
from app.executions.models import AgenticExecution
from workers.background.reconciler import reconcile_executions
from workers.process.startup import job_timeout_seconds, shutdown, startup
from workers.run.jobs import run_execution
from workers.run.state import STATE_KEY, WorkerState, state_of

__all__ = [
    "Script",
    "Step",
    "Worker",
    "answer",
    "call",
    "reload",
    "roles",
    "trace",
    "worker_context",
]


@asynccontextmanager
async def worker_context(settings: Settings) -> AsyncIterator[WorkerState]:
    """The state arq's on_startup builds for a worker with ``settings``, torn down after."""
    ctx: dict[str, Any] = {
        "settings": settings,
        "job_timeout_seconds": job_timeout_seconds(settings),
    }
    await startup(ctx)
    try:
        yield state_of(ctx)
    finally:
        await shutdown(ctx)


class Worker:
    """The worker's state (as arq's on_startup builds it) and a way to run one job."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state

    async def run(self, execution_id: int, model: Model | Script | None = None) -> str:
        if isinstance(model, Script):
            model = model.model
        self.state.model_override = model
        return await run_execution({STATE_KEY: self.state}, execution_id)

    async def reconcile(self, queue: ArqRedis) -> int:
        """One pass of this worker's reconciler."""
        return await reconcile_executions(
            self.state.sessionmaker,
            queue,
            stale_after=self.state.settings.stale_after_seconds,
            job_timeout_seconds=self.state.job_timeout_seconds,
            runs=self.state.runs,
        )


async def reload(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int
) -> AgenticExecution:
    async with sessionmaker() as session:
        execution = await session.get(AgenticExecution, execution_id)
        assert execution is not None
        return execution


async def trace(
    sessionmaker: async_sessionmaker[AsyncSession], conversation_id: int
) -> list[Message]:
    async with sessionmaker() as session:
        query = select(Message).where(Message.conversation_id == conversation_id)
        return list((await session.scalars(query.order_by(Message.id))).all())


def roles(messages: list[Message]) -> list[str]:
    return [m.role for m in messages]

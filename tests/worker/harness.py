"""Scripted models (agentrun.testing's, the plugin authors' own), a handle on the worker's job,
and reading back the outcome."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from arq.connections import ArqRedis
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentrun.testing import Script, Step, answer, call
from app.conversations.models import Message
from app.core.config import Settings
from app.definitions.run import ExecutionRun
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


class GatedModel:
    """A model that answers only once the test releases it, so a run stays in progress."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.called.set()
        await self.release.wait()
        step = answer({"greeting": "hi"})
        assert callable(step)
        return step(messages, info)


def before_the_first_tool_session(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[], Awaitable[None]]
) -> None:
    """Run ``before`` when the first tool of any run opens its session (``ExecutionRun.session``):
    after the model response asking for the tool was journaled, before the tool's effect."""
    original = ExecutionRun.session
    first = True

    @asynccontextmanager
    async def hooked(run: ExecutionRun) -> AsyncIterator[AsyncSession]:
        nonlocal first
        if first:
            first = False
            await before()
        async with original(run) as session:
            yield session

    monkeypatch.setattr(ExecutionRun, "session", hooked)


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

"""Two attempts of one execution interleaved: only the attempt that holds it writes.

Attempt 1's worker loses the execution (its heartbeat went stale: PostgreSQL unreachable, a
long pause) and another worker takes it over as attempt 2. Attempt 1 then comes back with its
own answer, while attempt 2 still runs: nothing attempt 1 writes may land, its outcome least of
all; attempt 2's outcome is the execution's.
"""

import asyncio
from datetime import timedelta
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations.trace import TraceEntry
from app.core.config import Settings
from app.core.db import utcnow
from app.executions.models import AgenticExecution
from tests.factories import Factory
from tests.worker.harness import Worker, answer, reload, trace, worker_context
from workers.run.outcome import Attempt, Outcome, persist


async def stale_heartbeat(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecution)
            .where(AgenticExecution.id == execution_id)
            .values(heartbeat_at=utcnow() - timedelta(minutes=5))
        )


def answering(result: dict[str, Any]) -> Any:
    step = answer(result)
    assert callable(step)
    return step


async def test_an_attempt_taken_over_cannot_write_its_outcome_over_the_next_one(
    worker: Worker,
    settings: Settings,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution = await factory.execution(
        agent, owner, input={"instructions": "Say who.", "output_schema": None}
    )
    second_asked = asyncio.Event()
    second_may_answer = asyncio.Event()

    async def second_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        second_asked.set()
        await second_may_answer.wait()
        response: ModelResponse = answering({"by": "attempt 2"})(messages, info)
        return response

    async with worker_context(settings) as other_ctx:
        other = Worker(other_ctx)
        second: asyncio.Task[str] | None = None

        async def first_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            nonlocal second
            # While attempt 1 waits for its model, its heartbeat goes stale and another worker
            # takes the execution over (the claim of an orphan), and asks its own model.
            await stale_heartbeat(sessionmaker, execution.id)
            second = asyncio.create_task(other.run(execution.id, FunctionModel(second_model)))
            await asyncio.wait_for(second_asked.wait(), 10)
            response: ModelResponse = answering({"by": "attempt 1"})(messages, info)
            return response

        first_status = await asyncio.wait_for(
            worker.run(execution.id, FunctionModel(first_model)), 10
        )
        # Attempt 1 is over, attempt 2 still runs: the execution is attempt 2's.
        during = await reload(sessionmaker, execution.id)
        second_may_answer.set()
        assert second is not None
        second_status = await asyncio.wait_for(second, 10)

    assert (first_status, second_status) == ("superseded", "finished")
    assert (during.status, during.attempts, during.result) == ("in_progress", 2, None)
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.attempts, done.result) == ("finished", 2, {"by": "attempt 2"})
    messages = await trace(sessionmaker, execution.conversation_id)
    calls = [m.payload["args"] for m in messages if m.role == "tool_call" and m.payload]
    assert calls == [{"by": "attempt 2"}]
    assert [m.role for m in messages].count("result") == 1


async def test_an_outcome_is_stored_only_by_the_attempt_holding_the_execution(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Taken over already: attempt 2 holds it. Attempt 1's last write is its outcome with the
    # trace's end (no trace write before it noticed the takeover).
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution = await factory.execution(
        agent, owner, input={"instructions": "Say who."}, status="in_progress", attempts=2
    )
    usage = {"requests": 1, "input_tokens": 1, "output_tokens": 1}

    def outcome(by: str) -> Outcome:
        closing = (TraceEntry("result", f"Result of {by}."),)
        return Outcome(usage=usage, result={"by": by}, closing=closing)

    first = Attempt(execution.id, execution.conversation_id, 1)
    second = Attempt(execution.id, execution.conversation_id, 2)
    assert await persist(sessionmaker, first, outcome("attempt 1"), retry_for=0) is None
    assert await persist(sessionmaker, second, outcome("attempt 2"), retry_for=0) is not None

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"by": "attempt 2"})
    messages = await trace(sessionmaker, execution.conversation_id)
    assert [m.content for m in messages] == ["Result of attempt 2."]

"""A fair share of a saturated fleet, end to end: executions submitted through the API, run by
real arq workers with a few slots and a slow scripted model. One user's backlog of fifty times
the slots does not hold back another user's few (app/executions/dispatch.py)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from httpx import AsyncClient
from prometheus_client import REGISTRY
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.models import AgenticExecution, ExecutionStatus
from tests.factories import Account, Factory, client_with_settings
from tests.worker.test_worker_process import arq_worker

# How long the model takes to answer: one slot-time.
MODEL_SECONDS = 0.2


class SlowModel:
    """Answers each run after MODEL_SECONDS; notes whose run asked, in the order they asked
    (the instructions name the user)."""

    def __init__(self) -> None:
        self.order: list[str] = []

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.order.append("bob" if "for bob" in repr(messages) else "alice")
        await asyncio.sleep(MODEL_SECONDS)
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"done": True})])


async def submit(client: AsyncClient, agent_id: int, account: Account, name: str) -> int:
    body = {
        "execution_key": "structured-task",
        "input": {"instructions": f"A task for {name}.", "output_schema": None},
    }
    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/", json=body, headers=account.headers
    )
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def until_all_finished(
    sessionmaker: async_sessionmaker[AsyncSession], count: int, within: float
) -> None:
    async with asyncio.timeout(within):
        while True:
            async with sessionmaker() as session:
                finished = await session.scalar(
                    select(func.count()).where(AgenticExecution.status == ExecutionStatus.FINISHED)
                )
            if finished == count:
                return
            await asyncio.sleep(0.1)


def waits_observed() -> float:
    sample = REGISTRY.get_sample_value(
        "agentrun_execution_wait_seconds_count", {"priority": "interactive"}
    )
    return sample or 0.0


@contextlib.asynccontextmanager
async def fleet(settings: Settings, model: SlowModel, workers: int) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(workers):
            await stack.enter_async_context(arq_worker(settings, FunctionModel(model)))
        yield


async def a_backlog_and_a_few(
    factory: Factory,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    workers: int,
    slots_each: int,
) -> None:
    slots = workers * slots_each
    alice, bob = await factory.account(username="alice"), await factory.account(username="bob")
    agent = await factory.agent(await factory.dataset(alice, bob), agent_type="structured-task")
    model = SlowModel()
    waits_before = waits_observed()
    backlog = 50 * slots
    few = 3
    saturated = settings.model_copy(update={"worker_concurrency": slots_each})
    async with (
        client_with_settings(settings, rate_limit_per_minute=100_000) as client,
        fleet(saturated, model, workers),
    ):
        for _ in range(backlog):
            await submit(client, agent.id, alice, "alice")
        for _ in range(few):
            await submit(client, agent.id, bob, "bob")
        started_before_bob = len(model.order)
        await until_all_finished(sessionmaker, backlog + few, within=backlog * MODEL_SECONDS * 4)

    after_bob = model.order[started_before_bob:]
    last_of_bob = max(index for index, name in enumerate(after_bob) if name == "bob")
    overtaking = after_bob[:last_of_bob].count("alice")
    # First in, first out, Bob would wait behind the rest of Alice's backlog (well over a
    # hundred runs here). Fair, his runs start within the next few slots that free up: at
    # most one round of the fleet's slots of Alice's (those already handed to the queue, and
    # those released in the same moment), so he finishes within about one slot-time of his
    # own run time.
    assert overtaking <= slots, (overtaking, len(model.order) - started_before_bob)
    assert after_bob.count("bob") == few
    assert model.order.count("alice") == backlog
    # Each run's wait for a slot went to the metrics, under its priority.
    assert waits_observed() - waits_before == backlog + few


async def test_a_backlog_does_not_hold_back_another_users_few_on_one_worker(
    factory: Factory,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await a_backlog_and_a_few(factory, settings, sessionmaker, workers=1, slots_each=3)


async def test_a_backlog_does_not_hold_back_another_users_few_on_two_workers(
    factory: Factory,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await a_backlog_and_a_few(factory, settings, sessionmaker, workers=2, slots_each=2)

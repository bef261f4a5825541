"""A worker paused between the journal write of a model response and its tool's effect (GC, a
VM migration, a partition that heals) wakes after another worker took the execution over and
finished it: the paused attempt's effect must not land over its successor's."""

import asyncio

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.definitions.run import ExecutionRun
from tests.factories import Factory
from tests.worker.harness import (
    Script,
    Worker,
    answer,
    before_the_first_tool_session,
    call,
    worker_context,
)
from tests.worker.test_attempt_fencing import stale_heartbeat
from tests.worker.test_catalog_enrichment import enrichment
from tests.worker.test_durable_runs import product
from tests.worker.test_invoice_scanning import UPDATED as STOCK_UPDATED
from tests.worker.test_invoice_scanning import invoice_run


class NoInput(BaseModel):
    pass


class PauseFirstEffect:
    """Pauses the first tool session a run opens (the first attempt's effect, its model
    response journaled already) until the test wakes it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paused = asyncio.Event()
        self.wake = asyncio.Event()
        before_the_first_tool_session(monkeypatch, self._pause)

    async def _pause(self) -> None:
        self.paused.set()
        await self.wake.wait()


async def taken_over_while_paused(
    worker: Worker,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    pause: PauseFirstEffect,
    execution_id: int,
    first: Script,
    second: Script,
) -> tuple[str, str]:
    """Attempt 1 runs ``first`` until its effect pauses; attempt 2 (another worker, the
    heartbeat gone stale) runs ``second`` to the end; then attempt 1 wakes and ends."""
    paused_run = asyncio.create_task(worker.run(execution_id, first))
    await asyncio.wait_for(pause.paused.wait(), 10)
    await stale_heartbeat(sessionmaker, execution_id)
    async with worker_context(settings) as other_ctx:
        second_status = await asyncio.wait_for(Worker(other_ctx).run(execution_id, second), 20)
    pause.wake.set()
    first_status = await asyncio.wait_for(paused_run, 10)
    return first_status, second_status


async def test_a_catalog_write_of_an_attempt_taken_over_does_not_land(
    worker: Worker,
    settings: Settings,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {"name": "Mug"}})
    pause = PauseFirstEffect(monkeypatch)
    first = Script(call("update_product", sku="SKU-001", description="By attempt 1."))
    # Attempt 2 replays attempt 1's model response; the write it asked for is left uncertain
    # (at most once), so the model writes what it now knows.
    second = Script(
        call("update_product", sku="SKU-001", description="By attempt 2."),
        answer({"SKU-001": "Product updated successfully"}),
    )

    statuses = await taken_over_while_paused(
        worker, settings, sessionmaker, pause, execution.id, first, second
    )

    assert statuses == ("superseded", "finished")
    assert (await product(sessionmaker, dataset, "SKU-001")).description == "By attempt 2."


async def test_a_stock_update_of_an_attempt_taken_over_does_not_land(
    worker: Worker,
    settings: Settings,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset, execution = await invoice_run(factory, ["SKU-001"])
    pause = PauseFirstEffect(monkeypatch)
    received = call("update_stock_levels", items=[{"sku": "SKU-001", "quantity": 3}])
    # Attempt 2 runs the replayed call (idempotent), then corrects the quantity it read.
    corrected = call("update_stock_levels", items=[{"sku": "SKU-001", "quantity": 4}])
    second = Script(corrected, answer({"SKU-001": STOCK_UPDATED}))

    statuses = await taken_over_while_paused(
        worker, settings, sessionmaker, pause, execution.id, Script(received), second
    )

    assert statuses == ("superseded", "finished")
    stocked = await product(sessionmaker, dataset, "SKU-001")
    # 5 in stock, this invoice's receipt counted once, as attempt 2 last wrote it.
    assert stocked.properties["stock"] == 9
    assert stocked.properties["stock_receipts"] == {str(execution.id): 4}


async def test_a_tool_calling_outside_gets_a_key_of_its_execution_and_call(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await enrichment(factory, ["SKU-001"])
    keys: list[str] = []

    async def notify_supplier(ctx: RunContext[ExecutionRun]) -> str:
        """Tell the supplier (a service outside, which deduplicates by key)."""
        keys.append(ctx.deps.idempotency_key(ctx.tool_call_id))
        return "Told."

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("notify_supplier", {}, tool_call_id="c-7")])
        return ModelResponse(parts=[TextPart("Done.")])

    run = ExecutionRun(
        execution_id=execution.id,
        agent_id=execution.agent_id,
        dataset_id=0,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        input=NoInput(),
        sessionmaker=sessionmaker,
        media_root=factory.settings.media_root,
    )
    agent = Agent(FunctionModel(model), deps_type=ExecutionRun, tools=[notify_supplier])

    await agent.run("Go.", deps=run)
    await agent.run("Go.", deps=run)  # the same call made again (a next attempt replaying it)

    assert keys == [f"agentrun-{execution.id}-c-7"] * 2

"""PostgreSQL restarting while a tool reads or writes the catalog: an infrastructure fault never
fails the execution. A tool that may run again waits for PostgreSQL and runs again; one declared
at most once hands the execution back, and the next attempt resumes it from the journal.

PostgreSQL is reached through the TCP gate of test_database_outage: shut, it cuts the open
connections and refuses new ones, as a restarting server does.
"""

import asyncio

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from tests.factories import Factory
from tests.faults.test_database_outage import Gate, gate, gated_worker
from tests.worker.harness import Script, answer, before_the_first_tool_session, call, reload
from tests.worker.test_catalog_enrichment import enrichment
from tests.worker.test_durable_runs import product
from tests.worker.test_invoice_scanning import UPDATED as STOCK_UPDATED
from tests.worker.test_invoice_scanning import invoice_run

__all__ = ["gate"]

RESTART_SECONDS = 1.5


def restart_under_the_first_tool(monkeypatch: pytest.MonkeyPatch, gate: Gate) -> None:
    """PostgreSQL restarts as the first tool opens its session: its connection is cut, and
    the server refuses connections for RESTART_SECONDS."""

    async def restart() -> None:
        gate.shut()
        asyncio.get_running_loop().call_later(RESTART_SECONDS, setattr, gate, "open", True)

    before_the_first_tool_session(monkeypatch, restart)


async def test_a_catalog_read_during_a_restart_waits_for_postgresql(
    fast_settings: Settings,
    gate: Gate,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {"name": "Mug"}})
    restart_under_the_first_tool(monkeypatch, gate)
    script = Script(call("read_products", skus=["SKU-001"]), answer({"SKU-001": "Read."}))

    async with gated_worker(fast_settings, gate) as worker:
        status = await worker.run(execution.id, script)

    assert status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.attempts) == ("finished", 1)
    # The model got the product, not an error.
    assert "Mug" in str(script.requests[1])


async def test_a_stock_write_during_a_restart_waits_for_postgresql_and_counts_once(
    fast_settings: Settings,
    gate: Gate,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset, execution = await invoice_run(factory, ["SKU-001"])
    restart_under_the_first_tool(monkeypatch, gate)
    script = Script(
        call("update_stock_levels", items=[{"sku": "SKU-001", "quantity": 3}]),
        answer({"SKU-001": STOCK_UPDATED}),
    )

    async with gated_worker(fast_settings, gate) as worker:
        status = await worker.run(execution.id, script)

    assert status == "finished"
    assert (await product(sessionmaker, dataset, "SKU-001")).properties["stock"] == 8


async def test_an_at_most_once_write_during_a_restart_hands_the_execution_back(
    fast_settings: Settings,
    gate: Gate,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {"name": "Mug"}})
    restart_under_the_first_tool(monkeypatch, gate)
    first = Script(call("update_product", sku="SKU-001", description="White."))
    # The next attempt: the model is told the write may or may not have been applied; it
    # checks and writes.
    second = Script(
        call("read_products", skus=["SKU-001"]),
        call("update_product", sku="SKU-001", description="White."),
        answer({"SKU-001": "Product updated successfully"}),
    )

    async with gated_worker(fast_settings, gate) as worker:
        first_status = await worker.run(execution.id, first)
        during = await reload(sessionmaker, execution.id)
        while not gate.open:
            await asyncio.sleep(0.1)
        for _ in range(100):
            if await worker.reconcile(queue):
                break
            await asyncio.sleep(0.1)
        second_status = await worker.run(execution.id, second)

    assert (first_status, during.status) == ("handed back", "in_progress")
    assert second_status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.attempts) == ("finished", 2)
    assert (await product(sessionmaker, dataset, "SKU-001")).description == "White."

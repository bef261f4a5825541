"""The built-in ``invoice-scanning`` definition, after Enthusiast's invoice scanning agent
(plugins/enthusiast-agent-invoice-scanning: execution_definition.py, its
update_stock_levels tool and its AllStockUpdatesSucceeded / AllSkusUpdated validators), run
by the worker with scripted models."""

from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.models import Dataset, Product
from app.conversations.models import ConversationFile
from app.executions.models import AgenticExecution
from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, call, reload, roles, trace

UPDATED = "Stock updated successfully"
INVOICE = b"Invoice 2026-11\nSKU-001 x 3\nSKU-002 x 2\n"


async def invoice_run(
    factory: Factory, skus: list[str] | None = None, *, attach: bool = True
) -> tuple[Dataset, AgenticExecution]:
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    await factory.product(dataset, "SKU-001", properties={"stock": 5, "color": "white"})
    await factory.product(dataset, "SKU-002")
    agent = await factory.agent(dataset, agent_type="invoice-scanning", file_upload=True)
    execution = await factory.execution(
        agent, owner, input={"skus": skus, "additional_instructions": None}
    )
    if attach:
        key = f"conversations/{execution.conversation_id}/invoice.txt"
        path = factory.settings.media_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(INVOICE)
        await factory._save(
            ConversationFile(
                conversation_id=execution.conversation_id,
                filename="invoice.txt",
                content_type="text/plain",
                size=len(INVOICE),
                sha256="0" * 64,
                storage_key=key,
            )
        )
    return dataset, execution


async def stock(sessionmaker: async_sessionmaker[AsyncSession], dataset: Dataset) -> dict:
    async with sessionmaker() as session:
        products = await session.scalars(select(Product).where(Product.dataset_id == dataset.id))
        return {p.sku: p.properties.get("stock") for p in products}


def items(**quantities: int) -> list[dict[str, Any]]:
    return [{"sku": sku.replace("_", "-"), "quantity": q} for sku, q in quantities.items()]


async def test_invoice_quantities_are_added_to_stock_once_per_execution(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await invoice_run(factory, ["SKU-001"])
    script = Script(
        call("read_file", filename="invoice.txt"),
        call("update_stock_levels", items=items(SKU_001=3, SKU_002=2)),
        # Called again with the same invoice: this execution's receipt is replaced.
        call("update_stock_levels", items=items(SKU_001=3)),
        answer({"SKU-001": UPDATED, "SKU-002": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED, "SKU-002": UPDATED})
    assert await stock(sessionmaker, dataset) == {"SKU-001": 8, "SKU-002": 2}


async def test_an_answer_without_the_stock_tool_is_sent_back(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await invoice_run(factory)
    script = Script(
        answer({"SKU-001": UPDATED}),
        call("update_stock_levels", items=items(SKU_001=1)),
        answer({"SKU-001": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED})
    messages = await trace(sessionmaker, execution.conversation_id)
    assert "without calling update_stock_levels" in next(
        m.content for m in messages if m.role == "retry"
    )
    assert await stock(sessionmaker, dataset) == {"SKU-001": 6, "SKU-002": None}


async def test_an_unknown_sku_fails_the_run_without_retry(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await invoice_run(factory)
    script = Script(
        call("update_stock_levels", items=items(SKU_001=2, SKU_404=1)),
        answer({"SKU-001": UPDATED, "SKU-404": "Failed"}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "validation_failed")
    assert done.failure_explanation == (
        "Stock update failed for the following SKUs: SKU-404: Failed to update stock: no "
        "product with this SKU."
    )
    assert script.steps == []
    # As Enthusiast's connector, the SKUs that could be updated were.
    assert await stock(sessionmaker, dataset) == {"SKU-001": 7, "SKU-002": None}


async def test_an_expected_sku_left_out_is_sent_back(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await invoice_run(factory, ["SKU-001", "SKU-002"])
    script = Script(
        call("update_stock_levels", items=items(SKU_001=3)),
        answer({"SKU-001": UPDATED}),
        call("update_stock_levels", items=items(SKU_002=2)),
        answer({"SKU-001": UPDATED, "SKU-002": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED, "SKU-002": UPDATED})
    messages = await trace(sessionmaker, execution.conversation_id)
    assert "were not updated: SKU-002" in next(m.content for m in messages if m.role == "retry")


async def test_without_an_invoice_the_run_fails_before_any_model_call(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await invoice_run(factory, attach=False)
    script = Script()

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "validation_failed")
    assert "No invoice was attached" in (done.failure_explanation or "")
    assert script.requests == []
    assert "failure" in roles(await trace(sessionmaker, execution.conversation_id))


async def test_the_type_is_offered_with_its_typed_input(
    client: AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner), agent_type="invoice-scanning", file_upload=True
    )

    response = await client.get(
        f"/api/agents/{agent.id}/agentic-execution-definitions/", headers=owner.headers
    )

    [definition] = response.json()
    assert definition["key"] == "invoice-scanning"
    assert set(definition["input_schema"]["properties"]) == {"additional_instructions", "skus"}

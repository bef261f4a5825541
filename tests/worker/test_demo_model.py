"""The offline ``demo`` model `make dev` uses without a provider key: each built-in type's
example in docs/api.md, submitted through the API and run by the worker, finishes with a
result that passes the type's validators and says no LLM produced it."""

from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.models import Product
from app.cli.demo import DemoSetup, seed_demo
from tests.worker.harness import Worker, reload
from workers.demo_model import NOTE, demo_model
from workers.demo_model.invoices import line_items

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
async def demo(session: AsyncSession) -> DemoSetup:
    seeded = await seed_demo(session)
    await session.commit()  # the caller owns the transaction (app/core/db.py)
    return seeded


def headers(demo: DemoSetup) -> dict[str, str]:
    return {"Authorization": f"Token {demo.token}"}


async def run(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
    agent_id: int,
    **request: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/", headers=headers(demo), **request
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["id"]
    await worker.run(execution_id, demo_model())
    await reload(sessionmaker, execution_id)
    read = await client.get(f"/api/agentic-executions/{execution_id}/", headers=headers(demo))
    return read.json()


async def products(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Product]:
    async with sessionmaker() as session:
        return {p.sku: p for p in await session.scalars(select(Product))}


async def test_catalog_enrichment_writes_the_product_from_the_catalogs_data(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
) -> None:
    execution = await run(
        client,
        worker,
        sessionmaker,
        demo,
        demo.catalog_agent_id,
        json={
            "execution_key": "catalog-enrichment",
            "input": {"skus": ["SKU-001"], "additional_instructions": "Keep it short."},
        },
    )

    assert execution["status"] == "finished", execution
    assert execution["result"] == {"SKU-001": f"Product updated successfully ({NOTE})"}
    shoe = (await products(sessionmaker))["SKU-001"]
    assert shoe.name == "Trail running shoe"
    assert shoe.description == (
        f"Trail running shoe: colour blue, drop 6 mm, weight 280 g. ({NOTE})"
    )


async def test_catalog_enrichment_with_a_file_takes_the_files_lines_about_the_sku(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
) -> None:
    spec = (EXAMPLES / "product_data.md").read_bytes()

    execution = await run(
        client,
        worker,
        sessionmaker,
        demo,
        demo.catalog_agent_id,
        data={"execution_key": "catalog-enrichment", "input": '{"skus": ["SKU-002"]}'},
        files={"files[]": ("product_data.md", spec, "text/markdown")},
    )

    assert execution["status"] == "finished", execution
    assert execution["result"] == {"SKU-002": f"Product updated successfully ({NOTE})"}
    jacket = (await products(sessionmaker))["SKU-002"]
    assert jacket.properties == {
        "waterproof_mm": 20000,
        "weight_g": 190,
        "material": "recycled nylon",
        "colour": "red",
        "hood": "adjustable, stows in the collar",
    }
    assert "taped seams keep the rain out" in jacket.description


async def test_catalog_enrichment_stops_for_a_sku_no_source_knows(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
) -> None:
    execution = await run(
        client,
        worker,
        sessionmaker,
        demo,
        demo.catalog_agent_id,
        json={"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-404"]}},
    )

    assert execution["status"] == "failed"
    assert execution["failure_code"] == "validation_failed"
    assert execution["failure_explanation"] == (
        "No product data found for SKU SKU-404 in any available resource."
    )


async def test_structured_task_answers_an_instance_of_the_schema(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "uses": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["uses", "rating"],
        "additionalProperties": False,
    }

    execution = await run(
        client,
        worker,
        sessionmaker,
        demo,
        demo.task_agent_id,
        json={
            "execution_key": "structured-task",
            "input": {"instructions": "Name three uses of a paperclip.", "output_schema": schema},
        },
    )

    assert execution["status"] == "finished", execution
    result = execution["result"]
    assert set(result) == {"uses", "rating", "when"}
    assert len(result["uses"]) == 3
    assert NOTE in result["uses"][0]
    assert "Name three uses of a paperclip" in result["uses"][1]
    assert 1 <= result["rating"] <= 5


async def test_structured_task_without_a_schema_says_so_in_its_own_field(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
) -> None:
    execution = await run(
        client,
        worker,
        sessionmaker,
        demo,
        demo.task_agent_id,
        json={
            "execution_key": "structured-task",
            "input": {"instructions": "Name three uses of a paperclip."},
        },
    )

    assert execution["status"] == "finished", execution
    assert execution["result"] == {
        "task": "Name three uses of a paperclip",
        "answer": [
            "item 1 for “Name three uses of a paperclip”",
            "item 2 for “Name three uses of a paperclip”",
            "item 3 for “Name three uses of a paperclip”",
        ],
        "_demo_note": NOTE,
    }


async def test_invoice_scanning_adds_the_invoices_quantities_to_the_stock(
    client: AsyncClient,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    demo: DemoSetup,
) -> None:
    invoice = (EXAMPLES / "invoice.csv").read_bytes()

    execution = await run(
        client,
        worker,
        sessionmaker,
        demo,
        demo.invoice_agent_id,
        data={"execution_key": "invoice-scanning", "input": "{}"},
        files={"files[]": ("invoice.csv", invoice, "text/csv")},
    )

    assert execution["status"] == "finished", execution
    assert execution["result"] == {
        "SKU-001": "Stock updated successfully",
        "SKU-003": "Stock updated successfully",
    }
    found = await products(sessionmaker)
    assert found["SKU-001"].properties["stock"] == 12
    assert found["SKU-003"].properties["stock"] == 40


def test_the_demo_model_finds_quantities_in_free_text_invoices() -> None:
    texts = [
        "Invoice 2026-11\nSKU-001 x 3\nSKU-002  Rain jacket  qty: 2  unit price 12.50\n",
        "Delivery note\nSKU-001 Trail running shoe 4 pairs at 54.90\n",
    ]

    assert line_items(texts) == [
        {"sku": "SKU-001", "quantity": 7},
        {"sku": "SKU-002", "quantity": 2},
    ]

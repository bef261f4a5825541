"""The built-in ``catalog-enrichment`` definition, run by the worker with scripted models."""

from typing import Any

from pydantic_ai import BinaryContent
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.models import Dataset, Product
from app.conversations.extraction import ExtractionLimits, extract_text
from app.conversations.models import ConversationFile
from app.core.config import Settings
from app.executions.models import AgenticExecution
from tests.factories import Factory
from tests.pdfs import one_page_pdf
from tests.worker.harness import Script, Worker, answer, call, reload, roles, trace

UPDATED = "Product updated successfully"


async def enrichment(
    factory: Factory, skus: list[str] | None, **products: dict[str, str]
) -> tuple[Dataset, AgenticExecution]:
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    for sku, fields in products.items():
        await factory.product(dataset, sku, **fields)
    agent = await factory.agent(dataset, agent_type="catalog-enrichment", file_upload=True)
    execution = await factory.execution(
        agent, owner, input={"skus": skus, "additional_instructions": None}
    )
    return dataset, execution


async def catalog(sessionmaker: async_sessionmaker[AsyncSession], dataset: Dataset) -> dict:
    async with sessionmaker() as session:
        products = await session.scalars(select(Product).where(Product.dataset_id == dataset.id))
        return {p.sku: (p.name, p.description, p.properties) for p in products}


async def attach(
    factory: Factory, execution: AgenticExecution, filename: str, content_type: str, data: bytes
) -> None:
    key = f"conversations/{execution.conversation_id}/{filename}"
    path = factory.settings.media_root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    await factory._save(
        ConversationFile(
            conversation_id=execution.conversation_id,
            filename=filename,
            content_type=content_type,
            size=len(data),
            sha256="0" * 64,
            storage_key=key,
        )
    )


async def test_products_are_updated_and_every_sku_reported(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await enrichment(
        factory, ["SKU-001", "SKU-002"], **{"SKU-001": {"name": "Mug"}, "SKU-002": {}}
    )
    script = Script(
        call("read_products", skus=["SKU-001", "SKU-002"]),
        call(
            "update_product",
            sku="SKU-001",
            description="A white ceramic mug.",
            properties={"color": "white"},
        ),
        call("update_product", sku="SKU-002", name="Teapot", description="A teapot."),
        answer({"SKU-001": UPDATED, "SKU-002": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED, "SKU-002": UPDATED})
    assert await catalog(sessionmaker, dataset) == {
        "SKU-001": ("Mug", "A white ceramic mug.", {"color": "white"}),
        "SKU-002": ("Teapot", "A teapot.", {}),
    }
    messages = await trace(sessionmaker, execution.conversation_id)
    tools = [(m.role, m.tool_name) for m in messages if m.tool_name]
    assert tools == [
        ("tool_call", "read_products"),
        ("tool_result", "read_products"),
        ("tool_call", "update_product"),
        ("tool_result", "update_product"),
        ("tool_call", "update_product"),
        ("tool_result", "update_product"),
        ("tool_call", "final_result"),
        ("tool_result", "final_result"),
    ]
    read = messages[3]
    assert '"name": "Mug"' in read.content or '"name":"Mug"' in read.content
    assert messages[3].tool_call_id == messages[2].tool_call_id
    assert messages[5].content == "Product SKU-001 updated."


async def test_sku_without_data_anywhere_stops_the_run_with_the_reason(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await enrichment(factory, ["SKU-002"])
    reason = "No product data found for SKU SKU-002 in any available resource."
    script = Script(
        call("read_products", skus=["SKU-002"]),
        call("search_catalog", query="SKU-002"),
        call("stop_execution", reason=reason),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.failure_explanation) == (
        "failed",
        "validation_failed",
        reason,
    )
    assert done.usage is not None
    assert done.usage["requests"] == 3
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages)[-2:] == ["tool_call", "failure"]
    assert messages[-2].tool_name == "stop_execution"


async def test_result_claiming_an_update_no_tool_made_is_sent_back(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {"name": "Mug"}})
    script = Script(
        answer({"SKU-001": UPDATED}),
        call("update_product", sku="SKU-001", description="A mug."),
        answer({"SKU-001": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED})
    feedback = [m.content for m in await trace(sessionmaker, execution.conversation_id)]
    assert any("update_product was not called for them" in text for text in feedback)


async def test_result_missing_a_sku_is_sent_back(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await enrichment(factory, ["SKU-001", "SKU-002"])
    both = {"SKU-001": "Not updated: no data.", "SKU-002": "Not updated: no data."}
    script = Script(answer({"SKU-001": "Not updated: no data."}), answer(both))

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", both)
    assert "it is missing these SKUs: SKU-002" in str(script.requests[1][-1])


async def test_without_skus_the_products_missing_data_are_enriched(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    complete = {"name": "Mug", "description": "A mug."}
    dataset, execution = await enrichment(
        factory, None, **{"SKU-001": complete, "SKU-002": {"name": "Teapot"}}
    )
    script = Script(
        call("update_product", sku="SKU-001", description="Changed."),
        call("update_product", sku="SKU-002", description="A teapot."),
        answer({"SKU-002": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-002": UPDATED})
    prompt = str(script.requests[0][0])
    assert "SKU-002" in prompt
    assert "SKU-001" not in prompt
    # SKU-001 needs no work: it is not this execution's to change.
    assert (await catalog(sessionmaker, dataset))["SKU-001"][1] == "A mug."


async def test_uploaded_files_are_read_by_the_agent(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await enrichment(factory, ["SKU-001"])
    await attach(factory, execution, "sheet.csv", "text/csv", b"sku,name\nSKU-001,Blue Kettle\n")
    script = Script(
        call("list_files"),
        call("read_file", filename="sheet.csv"),
        call("update_product", sku="SKU-001", name="Blue Kettle"),
        answer({"SKU-001": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert done.status == "finished"
    assert "sheet.csv (text/csv" in str(script.requests[0][0])
    results = list(await trace(sessionmaker, execution.conversation_id))
    read = next(m for m in results if m.role == "tool_result" and m.tool_name == "read_file")
    assert read.content == "sku,name\nSKU-001,Blue Kettle\n"
    assert (await catalog(sessionmaker, dataset))["SKU-001"][0] == "Blue Kettle"


def test_text_is_extracted_from_a_pdf(settings: Settings) -> None:
    text = extract_text(
        one_page_pdf("SKU-001 Blue Kettle 1.7 l"),
        "application/pdf",
        ExtractionLimits.from_settings(settings),
    )

    assert "SKU-001 Blue Kettle 1.7 l" in text


async def test_uploaded_images_reach_the_model_as_images(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await enrichment(factory, ["SKU-001"])
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    await attach(factory, execution, "photo.png", "image/png", png)
    script = Script(
        call("read_file", filename="photo.png"),
        answer({"SKU-001": "Not updated: the photo shows nothing useful."}),
    )

    await worker.run(execution.id, script)

    assert (await reload(sessionmaker, execution.id)).status == "finished"
    sent = [
        content
        for message in script.requests[1]
        for part in message.parts
        for content in (getattr(part, "content", None),)
        if isinstance(content, BinaryContent)
        or (isinstance(content, list) and any(isinstance(c, BinaryContent) for c in content))
    ]
    assert sent, "the image was not sent to the model"
    read = next(
        m
        for m in await trace(sessionmaker, execution.conversation_id)
        if m.role == "tool_result" and m.tool_name == "read_file"
    )
    assert read.content == "[image/png, 40 bytes]"


async def test_properties_too_deep_to_list_are_refused_to_the_model(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {"name": "Mug"}})
    deep: dict[str, Any] = {}
    for _ in range(100):
        deep = {"a": deep}
    script = Script(
        call("update_product", sku="SKU-001", properties={"deep": deep}),
        call("update_product", sku="SKU-001", description="A mug."),
        answer({"SKU-001": UPDATED}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED})
    assert await catalog(sessionmaker, dataset) == {"SKU-001": ("Mug", "A mug.", {})}
    results = [m.content for m in await trace(sessionmaker, execution.conversation_id)
               if m.role == "tool_result" and m.tool_name == "update_product"]  # fmt: skip
    assert results[0] == (
        "properties: Nested too deep: the limit is 64 levels of arrays and objects. "
        "Product SKU-001 was not changed."
    )


async def test_a_product_stored_deeper_than_the_limits_is_read_by_the_tool(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    deep: Any = "leaf"
    for _ in range(300):  # past what pydantic-core serialises (255 levels)
        deep = {"a": deep}
    _dataset, execution = await enrichment(
        factory, ["SKU-001"], **{"SKU-001": {"name": "Mug", "properties": {"nested": deep}}}
    )
    script = Script(
        call("read_products", skus=["SKU-001"]),
        answer({"SKU-001": "Read."}),
    )

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("finished", None)
    read = list(await trace(sessionmaker, execution.conversation_id))[3]
    assert read.tool_name == "read_products"
    assert '"name": "Mug"' in read.content or '"name":"Mug"' in read.content
    assert "leaf" in read.content

"""A worker killed (SIGKILL) between a tool's write and the model's next answer: the next
attempt resumes from the journal. The product is written once, and the model is never asked
again what it already answered."""

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.models import Product
from tests.factories import Factory
from tests.faults.conftest import Stack, terminal, until
from tests.mock_openai import MockOpenAI, Reply, tool_names, tool_schema
from tests.worker.harness import trace

UPDATED = "Product updated successfully"

# Every write of a product (insert or update) counted by PostgreSQL itself.
COUNT_WRITES = [
    "CREATE TABLE product_writes (sku text)",
    """CREATE FUNCTION count_product_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO product_writes VALUES (NEW.sku); RETURN NULL; END; $$""",
    """CREATE TRIGGER count_product_writes AFTER INSERT OR UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION count_product_write()""",
]
# The database outlives the test (the suite truncates, not drops): leave no schema behind,
# or the migration check finds a table no migration made.
STOP_COUNTING = [
    "DROP TRIGGER IF EXISTS count_product_writes ON products",
    "DROP FUNCTION IF EXISTS count_product_write()",
    "DROP TABLE IF EXISTS product_writes",
]


@pytest.fixture
async def counting_writes(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    async with sessionmaker() as session, session.begin():
        for statement in STOP_COUNTING:
            await session.execute(text(statement))


class Enricher:
    """The model: updates SKU-001, then (once ``answering`` is set) gives the result. Counts
    each request it answered, to tell one asked twice."""

    def __init__(self) -> None:
        self.answering = asyncio.Event()
        self.answered: list[str] = []
        self.asked_after_update = asyncio.Event()

    async def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request["messages"]
        if not any(m["role"] == "tool" for m in messages):
            update = {"sku": "SKU-001", "name": "Mug", "description": "A mug."}
            reply = Reply(tool_calls=[("update_product", update)])
        else:
            self.asked_after_update.set()
            # Asked by the worker about to be killed: the answer goes nowhere.
            unanswered = not self.answering.is_set()
            await self.answering.wait()
            result = next(n for n in tool_names(request) if n.startswith("final_result"))
            assert tool_schema(request, result)
            reply = Reply(tool_calls=[(result, {"SKU-001": UPDATED})])
            if unanswered:
                return reply
        self.answered.append(json.dumps(messages, sort_keys=True))
        return reply


async def writes(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(text("SELECT count(*) FROM product_writes")) or 0)


@pytest.mark.usefixtures("counting_writes")
async def test_a_worker_killed_after_a_write_resumes_without_writing_or_asking_twice(
    stack: Stack,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    model = Enricher()
    async with MockOpenAI(model) as server:
        owner = await factory.account()
        dataset = await factory.dataset(owner)
        await factory.product(dataset, "SKU-001")
        agent = await factory.agent(
            dataset,
            agent_type="catalog-enrichment",
            model_settings={"name": "openai:mock", "base_url": server.url},
        )
        async with sessionmaker() as session, session.begin():
            for statement in COUNT_WRITES:
                await session.execute(text(statement))
        api = await stack.api()
        first = await stack.worker("worker-1")
        async with httpx.AsyncClient(base_url=api, headers=owner.headers) as client:
            response = await client.post(
                f"/api/agents/{agent.id}/agentic-executions/",
                json={"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-001"]}},
            )
        assert response.status_code == 202, response.text
        execution_id = response.json()["id"]

        # update_product returned (its result is in the request) and the model has not answered.
        await asyncio.wait_for(model.asked_after_update.wait(), 30)
        first.signal(signal.SIGKILL)
        await first.exited(5)
        assert await writes(sessionmaker) == 1
        model.answering.set()
        await stack.worker("worker-2")
        started = time.monotonic()
        [done] = await until(sessionmaker, [execution_id], terminal, within=30)
        print(f"\nresumed and finished {time.monotonic() - started:.1f} s after the kill")

    assert (done.status, done.attempts) == ("finished", 2), done.failure_explanation
    assert done.result == {"SKU-001": UPDATED}
    # Written once: the second attempt replayed update_product's journaled result.
    assert await writes(sessionmaker) == 1
    async with sessionmaker() as session:
        product = await session.scalar(
            select(Product).where(Product.dataset_id == dataset.id, Product.sku == "SKU-001")
        )
    assert product is not None
    assert (product.name, product.description) == ("Mug", "A mug.")
    # Two requests answered, neither twice: the first attempt's answer was replayed, and the
    # first request was sent once in all.
    assert len(model.answered) == 2
    assert len(set(model.answered)) == 2
    firsts = [r for r in server.requests if not any(m["role"] == "tool" for m in r["messages"])]
    assert len(firsts) == 1
    assert [m["role"] for m in json.loads(model.answered[1]) if m["role"] == "assistant"] == [
        "assistant"
    ]
    # The trace says who wrote what, and where the run resumed.
    messages = await trace(sessionmaker, done.conversation_id)
    by_attempt = [(m.role, (m.payload or {}).get("attempt")) for m in messages]
    assert by_attempt[:3] == [("system", 1), ("user", 1), ("tool_call", 1)]
    resumed = [m for m in messages if m.role == "attempt"]
    assert len(resumed) == 1
    assert resumed[0].payload is not None
    assert resumed[0].payload["resumed"] is True
    assert all(attempt == 2 for _, attempt in by_attempt[by_attempt.index(("attempt", 2)) :])

"""A worker SIGKILLed in the middle of a batch: every item still ends, once, and the batch
finishes."""

import asyncio
import json
import signal
import time

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import ExecutionEvent
from tests.factories import Factory
from tests.faults.conftest import Stack, mock_agent, requests_per_label, terminal, until
from tests.mock_openai import MockOpenAI

ITEMS = 12


async def test_a_batch_whose_worker_is_killed_mid_way_ends_every_item_once(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 0.5
    owner, agent = await mock_agent(factory, mock_model.url)
    api_url = await stack.api()
    # Two at a time: the batch is mid-way for a while.
    first = await stack.worker("worker-1", worker_concurrency=2)
    async with httpx.AsyncClient(base_url=api_url, headers=owner.headers, timeout=30) as api:
        submitted = await api.post(
            f"/api/agents/{agent.id}/agentic-execution-batches/",
            json={
                "execution_key": "structured-task",
                "items": [{"input": {"instructions": f"Item {n}."}} for n in range(ITEMS)],
            },
        )
        assert submitted.status_code == 202, submitted.text
        batch_url = f"/api/agentic-execution-batches/{submitted.json()['id']}/"
        # Mid-way: some items ended, others running or waiting.
        deadline = time.monotonic() + 30
        while (await api.get(batch_url)).json()["counts"]["finished"] < 2:
            assert time.monotonic() < deadline, "no item finished"
            await asyncio.sleep(0.05)
        mock_model.latency = 30  # those running now die with the worker
        await asyncio.sleep(0.2)
        first.signal(signal.SIGKILL)
        await first.exited(5)
        killed_at = (await api.get(batch_url)).json()["counts"]
        mock_model.latency = 0.05
        await stack.worker("worker-2")

        listed = await api.get(f"/api/agentic-executions/?batch_id={submitted.json()['id']}")
        ids = [e["id"] for e in listed.json()["results"]]
        rows = await until(sessionmaker, ids, terminal, within=60)
        deadline = time.monotonic() + 10
        while (batch := (await api.get(batch_url)).json())["status"] != "finished":
            assert time.monotonic() < deadline, batch
            await asyncio.sleep(0.05)
        results = await api.get(f"{batch_url}results/")

    print(f"\ncounts when the worker was killed: {killed_at}")
    assert killed_at["pending"] + killed_at["in_progress"] > 0
    assert [row.status for row in rows] == ["finished"] * ITEMS
    assert batch["counts"] == {
        "total": ITEMS, "pending": 0, "in_progress": 0, "finished": ITEMS, "failed": 0,
    }  # fmt: skip
    # Each item ended once: one terminal status event each, its model answered at most twice
    # (a killed attempt, then the one that finished).
    async with sessionmaker() as session:
        ended = await session.execute(
            select(ExecutionEvent.execution_id, func.count())
            .where(
                ExecutionEvent.execution_id.in_(ids),
                ExecutionEvent.payload["status"].astext.in_(["finished", "failed"]),
            )
            .group_by(ExecutionEvent.execution_id)
        )
        assert sorted(count for _, count in ended) == [1] * ITEMS
    assert max(requests_per_label(mock_model).values()) <= 2
    lines = [json.loads(line) for line in results.text.splitlines()]
    assert [(line["item"], line["status"]) for line in lines] == [
        (n, "finished") for n in range(ITEMS)
    ]

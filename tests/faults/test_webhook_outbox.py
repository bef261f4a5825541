"""The webhook outbox: an event recorded with its status change is delivered even when the
worker that wrote it is killed before it could send it."""

import asyncio
import json
import signal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Factory
from tests.faults.conftest import Stack, Submitter, mock_agent, terminal, until
from tests.mock_openai import MockOpenAI
from tests.webhook_receiver import webhook_receiver


async def test_a_worker_killed_after_the_status_write_loses_no_webhook(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stack.overrides["webhook_allow_private_networks"] = True
    owner, agent = await mock_agent(factory, mock_model.url)
    api_url = await stack.api()
    async with (
        webhook_receiver() as receiver,
        httpx.AsyncClient(base_url=api_url, headers=owner.headers) as api,
    ):
        created = await api.post(
            "/api/webhooks/", json={"url": receiver.url, "events": ["execution.finished"]}
        )
        assert created.status_code == 201, created.text
        # This worker looks for webhooks to send only when it starts: it runs the execution,
        # writes its end (and the event), and is killed before it sends anything.
        first = await stack.worker("worker-1", webhook_poll_seconds=3600)
        [execution_id] = await Submitter(api_url, owner, agent.id).submit(1)
        await until(sessionmaker, [execution_id], terminal, within=30)
        first.signal(signal.SIGKILL)
        await first.exited(5)
        await asyncio.sleep(0.5)
        assert receiver.received == []

        await stack.worker("worker-2")
        [received] = await receiver.until(1, within=20)
        await asyncio.sleep(1.5)  # a second pass of worker-2 sends nothing more

    assert len(receiver.received) == 1
    body = json.loads(received.body)
    assert (body["type"], body["data"]["id"], body["data"]["status"]) == (
        "execution.finished",
        execution_id,
        "finished",
    )

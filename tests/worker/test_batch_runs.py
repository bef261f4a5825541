"""A batch run by the worker: its items are ordinary executions, its counts follow them, its
end is a signed batch.finished webhook and the end of its event stream."""

import asyncio
import json
from typing import Any

from httpx import AsyncClient
from standardwebhooks.webhooks import Webhook

from tests.factories import Account, Factory
from tests.webhook_receiver import Receiver
from tests.worker.harness import Script, Worker, answer
from tests.worker.test_webhooks import deliver, subscribe
from workers.background.webhook_delivery import WebhookSender

KEY = "structured-task"


async def submit(
    client: AsyncClient, factory: Factory, count: int
) -> tuple[Account, dict[str, Any]]:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type=KEY)
    response = await client.post(
        f"/api/agents/{agent.id}/agentic-execution-batches/",
        json={
            "execution_key": KEY,
            "items": [{"input": {"instructions": f"Say {index}."}} for index in range(count)],
        },
        headers=owner.headers,
    )
    assert response.status_code == 202, response.text
    return owner, response.json()


async def item_ids(client: AsyncClient, owner: Account, batch: dict[str, Any]) -> list[int]:
    listed = await client.get(batch["executions"], headers=owner.headers)
    return sorted(e["id"] for e in listed.json()["results"])


async def test_a_batch_run_by_the_worker_finishes_with_its_results_and_a_signed_webhook(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    owner, batch = await submit(client, factory, 3)
    endpoint = await subscribe(client, owner, receiver.url, ["batch.finished"])
    ids = await item_ids(client, owner, batch)

    assert await worker.run(ids[0], Script(answer({"said": 0}))) == "finished"
    halfway = await client.get(
        f"/api/agentic-execution-batches/{batch['id']}/", headers=owner.headers
    )
    assert halfway.json()["counts"] == {
        "total": 3, "pending": 2, "in_progress": 0, "finished": 1, "failed": 0,
    }  # fmt: skip
    await deliver(sender)
    assert receiver.received == []
    assert await worker.run(ids[1], Script(answer({"said": 1}))) == "finished"
    assert await worker.run(ids[2], Script(answer({"said": 2}))) == "finished"
    await deliver(sender)

    received = await receiver.until(1)
    body = Webhook(endpoint["secret"]).verify(received[0].body, received[0].headers)
    assert body["type"] == "batch.finished"
    assert received[0].headers["webhook-id"] == f"msg_batch_{batch['id']}"
    assert body["data"]["id"] == batch["id"]
    assert body["data"]["status"] == "finished"
    assert body["data"]["counts"]["finished"] == 3
    results = await client.get(batch["results"], headers=owner.headers)
    lines = [json.loads(line) for line in results.text.splitlines()]
    assert [(line["item"], line["status"], line["result"]) for line in lines] == [
        (0, "finished", {"said": 0}),
        (1, "finished", {"said": 1}),
        (2, "finished", {"said": 2}),
    ]
    # Once only: another pass sends nothing more.
    await deliver(sender)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1


async def test_the_event_stream_sends_progress_then_the_end(
    client: AsyncClient, factory: Factory, worker: Worker
) -> None:
    owner, batch = await submit(client, factory, 2)
    ids = await item_ids(client, owner, batch)
    events: list[tuple[str, dict[str, Any]]] = []

    async def follow() -> None:
        async with client.stream(
            "GET", f"/api/agentic-execution-batches/{batch['id']}/events/", headers=owner.headers
        ) as stream:
            kind = ""
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))

    following = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    assert await worker.run(ids[0], Script(answer({"said": 0}))) == "finished"
    await asyncio.sleep(0.5)
    assert await worker.run(ids[1], Script(answer({"said": 1}))) == "finished"
    await asyncio.wait_for(following, 10)

    kinds = [kind for kind, _ in events]
    assert (kinds[0], kinds[-1]) == ("progress", "finished")
    assert events[0][1]["counts"]["pending"] == 2
    assert any(kind == "progress" and data["counts"]["finished"] == 1 for kind, data in events)
    assert events[-1][1]["counts"]["finished"] == 2

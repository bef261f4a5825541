"""Webhook deliveries: made from the status events, signed as Standard Webhooks, retried with
the same webhook-id, recorded attempt by attempt."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core.config import Settings
from app.core.db import utcnow
from app.webhooks.models import WebhookEndpoint
from tests.factories import Account, Factory
from tests.webhook_receiver import Receiver, webhook_receiver
from tests.worker.harness import Script, Worker, answer
from workers.background.webhook_delivery import WebhookSender

ALL_EVENTS = ["execution.started", "execution.finished", "execution.failed", "execution.cancelled"]


# The root conftest's sender, retrying at once: the tests watch the retries.
@pytest.fixture
async def sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[WebhookSender]:
    quick = settings.model_copy(update={"webhook_retry_schedule": [0.2, 0.2]})
    sender = WebhookSender(sessionmaker, quick)
    yield sender
    await sender.aclose()


async def deliver(sender: WebhookSender) -> None:
    """One pass of a worker's webhook task, its attempts awaited."""
    await sender.run_once()
    await sender.settle()


async def subscribe(
    client: AsyncClient, owner: Account, url: str, events: list[str] = ALL_EVENTS, **extra: Any
) -> dict[str, Any]:
    created = await client.post(
        "/api/webhooks/", json={"url": url, "events": events, **extra}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def start_task(client: AsyncClient, factory: Factory) -> tuple[Account, int, int]:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={"execution_key": "structured-task", "input": {"instructions": "Say hi."}},
        headers=owner.headers,
    )
    assert started.status_code == 202
    return owner, agent.id, started.json()["id"]


async def test_deliveries_are_signed_and_verify_with_standardwebhooks(
    client: AsyncClient, factory: Factory, worker: Worker, receiver: Receiver, sender: WebhookSender
) -> None:
    owner, _, execution_id = await start_task(client, factory)
    endpoint = await subscribe(client, owner, receiver.url)
    await worker.run(execution_id, Script(answer({"hi": True})))

    await deliver(sender)

    received = await receiver.until(2)
    verifier = Webhook(endpoint["secret"])
    bodies = [verifier.verify(r.body, r.headers) for r in received]
    assert [b["type"] for b in bodies] == ["execution.started", "execution.finished"]
    final = await client.get(f"/api/agentic-executions/{execution_id}/", headers=owner.headers)
    assert bodies[1]["data"] == final.json()
    assert bodies[0]["data"]["status"] == "in_progress"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(received[0].body, received[0].headers)
    # Nothing is sent twice.
    await deliver(sender)
    assert len(receiver.received) == 2


async def test_an_endpoint_receives_what_happens_after_it_is_stored_not_before(
    client: AsyncClient, factory: Factory, worker: Worker, receiver: Receiver, sender: WebhookSender
) -> None:
    # Run while no endpoint existed: its events need no dispatch, now or later.
    owner, agent_id, before = await start_task(client, factory)
    await worker.run(before, Script(answer({"hi": True})))
    endpoint = await subscribe(client, owner, receiver.url, ["execution.finished"])
    started = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        json={"execution_key": "structured-task", "input": {"instructions": "Say hi."}},
        headers=owner.headers,
    )
    after = started.json()["id"]
    await worker.run(after, Script(answer({"hi": True})))

    await deliver(sender)

    [received] = await receiver.until(1)
    assert json.loads(received.body)["data"]["id"] == after
    await deliver(sender)
    assert len(receiver.received) == 1
    page = await client.get(f"/api/webhooks/{endpoint['id']}/deliveries/", headers=owner.headers)
    assert [d["execution_id"] for d in page.json()["results"]] == [after]


async def test_a_failed_attempt_is_retried_with_the_same_webhook_id(
    client: AsyncClient, factory: Factory, worker: Worker, receiver: Receiver, sender: WebhookSender
) -> None:
    owner, _, execution_id = await start_task(client, factory)
    endpoint = await subscribe(client, owner, receiver.url, ["execution.finished"])
    await worker.run(execution_id, Script(answer({"hi": True})))
    receiver.answers = [500]

    await deliver(sender)
    await asyncio.sleep(0.3)
    await deliver(sender)

    first, second = await receiver.until(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    Webhook(endpoint["secret"]).verify(second.body, second.headers)
    page = await client.get(f"/api/webhooks/{endpoint['id']}/deliveries/", headers=owner.headers)
    [delivery] = page.json()["results"]
    assert delivery["status"] == "delivered"
    assert delivery["webhook_id"] == first.headers["webhook-id"]
    attempts = delivery["attempts"]
    assert [a["response_status"] for a in attempts] == [500, 200]
    assert attempts[0]["error"] == "HTTP 500"
    assert attempts[0]["response_body"] == "answered 500"
    assert attempts[1]["error"] is None


async def test_after_the_last_attempt_the_delivery_fails_and_a_long_failing_endpoint_is_disabled(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    receiver: Receiver,
    sender: WebhookSender,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, _, execution_id = await start_task(client, factory)
    endpoint = await subscribe(client, owner, receiver.url, ["execution.finished"])
    await worker.run(execution_id, Script(answer({"hi": True})))
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(WebhookEndpoint).values(failing_since=utcnow() - timedelta(days=5, minutes=1))
        )
    receiver.answers = [503, 503, 503]

    for _ in range(3):
        await deliver(sender)
        await asyncio.sleep(0.3)

    assert len(receiver.received) == 1  # disabled after this failure: failing for 5 days
    url = f"/api/webhooks/{endpoint['id']}/"
    read = await client.get(url, headers=owner.headers)
    assert read.json()["enabled"] is False
    assert "every delivery failed since" in read.json()["disabled_reason"]

    enabled = await client.patch(url, json={"enabled": True}, headers=owner.headers)
    assert enabled.json()["disabled_reason"] is None
    for _ in range(3):
        await deliver(sender)
        await asyncio.sleep(0.3)
    assert len(receiver.received) == 3  # 1 + the 2 retries of the schedule, then failed
    page = await client.get(f"{url}deliveries/?status=failed", headers=owner.headers)
    [delivery] = page.json()["results"]
    assert [a["response_status"] for a in delivery["attempts"]] == [503, 503, 503]
    assert (await client.get(url, headers=owner.headers)).json()["enabled"] is True

    redelivered = await client.post(
        f"{url}deliveries/{delivery['id']}/redeliver/", headers=owner.headers
    )
    assert redelivered.status_code == 202
    assert redelivered.json()["status"] == "pending"
    await deliver(sender)
    assert len(receiver.received) == 4
    assert receiver.received[3].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
    page = await client.get(f"{url}deliveries/?status=delivered", headers=owner.headers)
    assert [a["response_status"] for a in page.json()["results"][0]["attempts"]] == [
        503,
        503,
        503,
        200,
    ]


async def test_after_rotation_both_secrets_verify(
    client: AsyncClient, factory: Factory, worker: Worker, receiver: Receiver, sender: WebhookSender
) -> None:
    owner, _, execution_id = await start_task(client, factory)
    endpoint = await subscribe(client, owner, receiver.url, ["execution.finished"])
    rotated = await client.post(
        f"/api/webhooks/{endpoint['id']}/rotate-secret/", headers=owner.headers
    )
    await worker.run(execution_id, Script(answer({"hi": True})))

    await deliver(sender)

    [received] = await receiver.until(1)
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(received.body, received.headers)
    Webhook(rotated.json()["secret"]).verify(received.body, received.headers)


async def test_endpoints_receive_only_what_their_owner_sees_of_their_agent(
    client: AsyncClient, factory: Factory, receiver: Receiver, sender: WebhookSender
) -> None:
    owner, agent_id, execution_id = await start_task(client, factory)
    admin = await factory.account(admin=True)
    stranger = await factory.account()
    other_agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    await subscribe(client, stranger, receiver.url + "?stranger")
    await subscribe(client, owner, receiver.url + "?other-agent", agent_id=other_agent.id)
    await subscribe(client, owner, receiver.url + "?this-agent", agent_id=agent_id)
    await subscribe(client, admin, receiver.url + "?admin")
    await subscribe(client, owner, receiver.url + "?finished-only", ["execution.finished"])

    cancelled = await client.post(
        f"/api/agentic-executions/{execution_id}/cancel/", headers=owner.headers
    )
    assert cancelled.status_code == 200
    await deliver(sender)

    received = await receiver.until(2)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 2
    bodies = [json.loads(r.body) for r in received]
    assert {b["type"] for b in bodies} == {"execution.cancelled"}
    assert all(b["data"] == cancelled.json() for b in bodies)


async def test_a_slow_receiver_holds_only_its_own_slots(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    one_at_a_time = settings.model_copy(
        update={"webhook_concurrency_per_endpoint": 1, "webhook_concurrency": 10}
    )
    sender = WebhookSender(sessionmaker, one_at_a_time)
    async with webhook_receiver() as slow, webhook_receiver() as fast:
        slow.delay = 4
        await subscribe(client, owner, slow.url)
        await subscribe(client, owner, fast.url)
        for _ in range(3):
            started = await client.post(
                f"/api/agents/{agent.id}/agentic-executions/",
                json={"execution_key": "structured-task", "input": {"instructions": "Hi."}},
                headers=owner.headers,
            )
            await client.post(
                f"/api/agentic-executions/{started.json()['id']}/cancel/", headers=owner.headers
            )
        try:
            # Passes of the worker's webhook task: the fast receiver has all three while the
            # slow one still holds its only slot with the first.
            for _ in range(20):
                await sender.run_once()
                if len(fast.received) == 3:
                    break
                await asyncio.sleep(0.05)
            assert len(fast.received) == 3
            assert len(slow.received) == 1
        finally:
            await sender.aclose()

"""A2A push notification configs: stored per task and user, delivered as signed webhooks."""

import pytest
from a2a.types.a2a_pb2 import (
    AuthenticationInfo,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    SendMessageConfiguration,
    StreamResponse,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from google.protobuf import json_format  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from app.catalog.models import DatasetMember
from app.core.config import Settings
from app.webhooks.signing import new_secret
from tests.factories import Factory
from tests.protocols.helpers import execution_count
from tests.protocols.test_a2a import ADA, Connect, connect, sent, start_message
from tests.protocols.test_a2a import structured_task_agent as agent_of
from tests.webhook_receiver import Receiver
from tests.worker.harness import Script, Worker, answer
from workers.background.webhook_delivery import WebhookSender

__all__ = ["connect"]


async def deliver(sender: WebhookSender) -> None:
    """One pass of a worker's webhook task, its attempts awaited."""
    await sender.run_once()
    await sender.settle()


def pushed(body: bytes) -> StreamResponse:
    return json_format.Parse(body, StreamResponse())


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
async def test_a_config_set_on_a_task_receives_its_signed_updates(
    binding: str,
    factory: Factory,
    connect: Connect,
    worker: Worker,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    owner, agent = await agent_of(factory)
    secret = new_secret()

    async with connect(owner, agent, binding=binding) as client:
        task = await sent(client, start_message(return_immediately=True))
        config = await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, id="mine", url=receiver.url, token=secret)
        )
        await worker.run(int(task.id), Script(answer(ADA)))
        await deliver(sender)
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )

    assert (config.task_id, config.id, config.url) == (task.id, "mine", receiver.url)
    assert list(listed.configs) == [config]
    started, finished = await receiver.until(2)
    # Signed with the config's token, a Standard Webhooks secret (so it is not sent).
    for received in (started, finished):
        Webhook(secret).verify(received.body, received.headers)
        assert "x-a2a-notification-token" not in received.headers
    assert pushed(started.body).task.status.state == TaskState.TASK_STATE_WORKING
    final = pushed(finished.body).task
    assert (final.id, final.status.state) == (task.id, TaskState.TASK_STATE_COMPLETED)
    assert json_format.MessageToDict(final.artifacts[0].parts[0].data) == ADA


async def test_a_config_sent_with_the_message_carries_its_token_and_authentication(
    factory: Factory,
    connect: Connect,
    worker: Worker,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    owner, agent = await agent_of(factory)
    request = start_message(return_immediately=True)
    request.configuration.CopyFrom(
        SendMessageConfiguration(
            return_immediately=True,
            task_push_notification_config=TaskPushNotificationConfig(
                url=receiver.url,
                token="opaque-token",
                authentication=AuthenticationInfo(scheme="Bearer", credentials="abc"),
            ),
        )
    )

    async with connect(owner, agent) as client:
        task = await sent(client, request)
        config = await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task.id, id=task.id)
        )
        await worker.run(int(task.id), Script(answer(ADA)))
        await deliver(sender)

    assert config.url == receiver.url
    received = await receiver.until(2)
    assert {r.headers["x-a2a-notification-token"] for r in received} == {"opaque-token"}
    assert {r.headers["authorization"] for r in received} == {"Bearer abc"}
    assert all(r.headers["webhook-signature"].startswith("v1,") for r in received)


async def test_another_user_can_neither_see_nor_set_configs_on_a_task(
    factory: Factory,
    connect: Connect,
    receiver: Receiver,
) -> None:
    owner, agent = await agent_of(factory)
    colleague = await factory.account()
    async with factory.sessionmaker() as session:
        session.add(DatasetMember(dataset_id=agent.dataset_id, user_id=colleague.user.id))
        await session.commit()
    async with connect(owner, agent) as client:
        task = await sent(client, start_message(return_immediately=True))
        await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, url=receiver.url)
        )

    async with connect(colleague, agent) as client:
        with pytest.raises(TaskNotFoundError):
            await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url=receiver.url)
            )
        with pytest.raises(TaskNotFoundError):
            await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
        with pytest.raises(TaskNotFoundError):
            await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task.id, id=task.id)
            )
        with pytest.raises(TaskNotFoundError):
            await client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=task.id)
            )

    async with connect(owner, agent) as client:
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        assert [c.id for c in listed.configs] == [task.id]
        await client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=task.id)
        )
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        assert list(listed.configs) == []


async def test_a_private_address_is_refused_with_a_protocol_error_naming_the_url(
    factory: Factory,
    connect: Connect,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await agent_of(factory)
    monkeypatch.setattr(settings, "webhook_allow_private_networks", False)

    async with connect(owner, agent) as client:
        task = await sent(client, start_message(return_immediately=True))
        with pytest.raises(InvalidParamsError, match=r"url: .*169\.254\.169\.254.*refused"):
            await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url="http://169.254.169.254/latest")
            )
        request = start_message()
        request.configuration.task_push_notification_config.url = "http://127.0.0.1:9/hook"
        with pytest.raises(InvalidParamsError, match=r"url: .*loopback"):
            await sent(client, request)
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )

    assert list(listed.configs) == []
    # The message with a refused config started nothing.
    assert await execution_count(sessionmaker) == 1

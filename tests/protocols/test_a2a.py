"""Each agent as an A2A agent at /a2a/{agent_id}, driven by the A2A SDK's own client over real
HTTP, a worker running the jobs."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, create_client
from a2a.client.errors import AgentCardResolutionError
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.catalog.models import DatasetMember
from app.executions.a2a_task import data_part, from_data_part
from tests.factories import Account, Factory
from tests.protocols.helpers import TASK_INPUT, execution_count, next_execution
from tests.worker.harness import Script, Worker, answer, call

Connect = Callable[..., AbstractAsyncContextManager[Client]]
ADA = {"name": "Ada", "age": 36}


@pytest.fixture
def connect(live_url: str) -> Connect:
    @asynccontextmanager
    async def connected(
        account: Account, agent: Agent, *, streaming: bool = False, binding: str = "JSONRPC"
    ) -> AsyncIterator[Client]:
        async with httpx.AsyncClient(headers=account.headers, timeout=30) as http:
            config = ClientConfig(
                httpx_client=http, streaming=streaming, supported_protocol_bindings=[binding]
            )
            client = await create_client(f"{live_url}/a2a/{agent.id}", config)
            try:
                yield client
            finally:
                await client.close()

    return connected


async def structured_task_agent(factory: Factory) -> tuple[Account, Agent]:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner), agent_type="structured-task", name="Tasks"
    )
    return owner, agent


def start_message(
    data: Any = None, *, return_immediately: bool = False, message_id: str | None = None
) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=message_id or uuid.uuid4().hex,
            role=Role.ROLE_USER,
            parts=[data_part(data or {"execution_key": "structured-task", "input": TASK_INPUT})],
        ),
        configuration=SendMessageConfiguration(return_immediately=return_immediately),
    )


async def sent(client: Client, request: SendMessageRequest) -> Task:
    responses = [response async for response in client.send_message(request)]
    assert len(responses) == 1
    return responses[0].task


async def test_card_resolves_from_the_agents_base_url_for_its_users_only(
    factory: Factory, live_url: str
) -> None:
    owner, agent = await structured_task_agent(factory)
    base = f"{live_url}/a2a/{agent.id}"

    async with httpx.AsyncClient(headers=owner.headers) as http:
        card = await A2ACardResolver(http, base).get_agent_card()

    assert card.name == "Tasks"
    assert [(s.id, list(s.input_modes), list(s.output_modes)) for s in card.skills] == [
        ("structured-task", ["application/json"], ["application/json"])
    ]
    assert {(i.protocol_binding, i.url) for i in card.supported_interfaces} == {
        ("JSONRPC", f"{base}/jsonrpc"),
        ("HTTP+JSON", f"{base}/rest"),
    }
    assert card.capabilities.streaming
    assert card.capabilities.push_notifications
    scheme = card.security_schemes["token"].api_key_security_scheme
    assert (scheme.location, scheme.name) == ("header", "Authorization")

    stranger = await factory.account()
    async with httpx.AsyncClient(headers=stranger.headers) as http:
        with pytest.raises(AgentCardResolutionError, match="404"):
            await A2ACardResolver(http, base).get_agent_card()


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
async def test_send_waits_for_the_result_and_get_answers_the_same_task(
    binding: str,
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await structured_task_agent(factory)

    async with connect(owner, agent, binding=binding) as client:
        sending = asyncio.create_task(sent(client, start_message()))
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(answer(ADA)))
        task = await sending
        fetched = await client.get_task(GetTaskRequest(id=task.id))

    assert task.id == str(execution.id)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [from_data_part(p) for p in task.artifacts[0].parts] == [ADA]
    assert fetched == task


async def test_return_immediately_answers_the_submitted_task(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, agent = await structured_task_agent(factory)

    async with connect(owner, agent) as client:
        task = await sent(client, start_message(return_immediately=True))

    execution = await next_execution(sessionmaker)
    assert (task.id, task.status.state) == (str(execution.id), TaskState.TASK_STATE_SUBMITTED)
    assert execution.status == "pending"


async def test_failure_is_a_failed_task_naming_code_and_explanation(
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await structured_task_agent(factory)

    async with connect(owner, agent) as client:
        sending = asyncio.create_task(sent(client, start_message()))
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(call("stop_execution", reason="Nobody knows Ada.")))
        task = await sending

    assert task.status.state == TaskState.TASK_STATE_FAILED
    parts = task.status.message.parts
    assert parts[0].text == "validation_failed: Nobody knows Ada."
    assert from_data_part(parts[1]) == {
        "failure_code": "validation_failed",
        "failure_explanation": "Nobody knows Ada.",
    }


async def test_list_and_cancel_map_onto_the_executions(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, agent = await structured_task_agent(factory)
    _, other_agent = await structured_task_agent(factory)
    await factory.execution(other_agent, owner)  # another agent's: not in this agent's list

    async with connect(owner, agent) as client:
        first = await sent(client, start_message(return_immediately=True))
        second = await sent(client, start_message(return_immediately=True))
        cancelled = await client.cancel_task(CancelTaskRequest(id=first.id))
        listed = await client.list_tasks(ListTasksRequest())
        working = await client.list_tasks(ListTasksRequest(status=TaskState.TASK_STATE_SUBMITTED))

    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert cancelled.status.message.parts[0].text.startswith("cancelled: Cancelled by ")
    assert [t.id for t in listed.tasks] == [second.id, first.id]
    assert listed.total_size == 2
    assert [t.id for t in working.tasks] == [second.id]


async def test_stream_follows_the_execution_to_its_result(
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await structured_task_agent(factory)
    events: list[StreamResponse] = []

    async def stream(client: Client) -> None:
        async for event in client.send_message(start_message()):
            events.append(event)

    async with connect(owner, agent, streaming=True) as client:
        streaming = asyncio.create_task(stream(client))
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(answer(ADA)))
        await streaming
        # A subscription to an ended task answers it, and ends.
        subscribed = [
            e async for e in client.subscribe(SubscribeToTaskRequest(id=str(execution.id)))
        ]

    assert events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    # One status update per status event of the execution's log, the result before the last.
    assert [e.WhichOneof("payload") for e in events[1:]] == [
        "status_update",
        "artifact_update",
        "status_update",
    ]
    assert [e.status_update.status.state for e in events if e.HasField("status_update")] == [
        TaskState.TASK_STATE_WORKING,
        TaskState.TASK_STATE_COMPLETED,
    ]
    assert from_data_part(events[2].artifact_update.artifact.parts[0]) == ADA
    assert subscribed[0].task.status.state == TaskState.TASK_STATE_COMPLETED


async def test_a_repeated_message_id_is_the_same_task(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, agent = await structured_task_agent(factory)

    async with connect(owner, agent) as client:
        first = await sent(client, start_message(return_immediately=True, message_id="m-1"))
        again = await sent(client, start_message(return_immediately=True, message_id="m-1"))

    assert again.id == first.id
    assert await execution_count(sessionmaker) == 1


async def test_another_users_task_is_not_found(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, agent = await structured_task_agent(factory)
    colleague = await factory.account()
    async with factory.sessionmaker() as session:
        session.add(DatasetMember(dataset_id=agent.dataset_id, user_id=colleague.user.id))
        await session.commit()

    async with connect(owner, agent) as client:
        task = await sent(client, start_message(return_immediately=True))
    async with connect(colleague, agent) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id=task.id))
        assert list((await client.list_tasks(ListTasksRequest())).tasks) == []
        by_context = await client.list_tasks(ListTasksRequest(context_id=task.context_id))
        assert list(by_context.tasks) == []


async def test_bad_input_is_a_protocol_error_naming_the_fields_and_starts_nothing(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, agent = await structured_task_agent(factory)

    async with connect(owner, agent) as client:
        with pytest.raises(InvalidParamsError, match=r"input\.instructions"):
            await sent(
                client, start_message({"execution_key": "structured-task", "input": {"x": 1}})
            )
        with pytest.raises(InvalidParamsError, match="execution_key"):
            await sent(client, start_message({"execution_key": "nope", "input": {}}))

    assert await execution_count(sessionmaker) == 0


async def test_without_a_live_token_every_a2a_path_answers_401(
    factory: Factory, live_url: str
) -> None:
    _, agent = await structured_task_agent(factory)
    async with httpx.AsyncClient(base_url=f"{live_url}/a2a/{agent.id}") as http:
        card = await http.get("/.well-known/agent-card.json")
        send = await http.post(
            "/jsonrpc",
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "1"}},
            headers={"Authorization": "Token nope"},
        )
        rest = await http.get("/rest/tasks/1", headers={"Authorization": "Token nope"})

    assert (card.status_code, card.json()) == (
        401,
        {"detail": "Authentication credentials were not provided."},
    )
    assert (send.status_code, send.json()) == (401, {"detail": "Invalid token."})
    assert rest.status_code == 401


async def test_ids_no_row_can_have_are_not_found(
    factory: Factory, connect: Connect, live_url: str
) -> None:
    owner, agent = await structured_task_agent(factory)
    async with httpx.AsyncClient(base_url=live_url, headers=owner.headers) as http:
        for agent_id in ("2147483648", "9" * 5000, "x1"):
            response = await http.get(f"/a2a/{agent_id}/.well-known/agent-card.json")
            assert (response.status_code, response.json()) == (404, {"detail": "Agent not found."})

    async with connect(owner, agent) as client:
        for task_id in ("2147483648", "9" * 5000, "-1", "x"):
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id=task_id))


async def test_a_tasks_context_is_its_conversation_and_its_history_the_request(
    factory: Factory, connect: Connect
) -> None:
    owner, agent = await structured_task_agent(factory)

    async with connect(owner, agent) as client:
        first = await sent(client, start_message(return_immediately=True))
        second = await sent(client, start_message(return_immediately=True))
        of_first = await client.list_tasks(ListTasksRequest(context_id=first.context_id))
        of_nothing = await client.list_tasks(ListTasksRequest(context_id="no-such-context"))
        with_history = await client.get_task(GetTaskRequest(id=first.id))
        without = await client.get_task(GetTaskRequest(id=first.id, history_length=0))
        listed = await client.list_tasks(ListTasksRequest(history_length=1))

    assert first.context_id != second.context_id
    assert [t.id for t in of_first.tasks] == [first.id]
    assert list(of_nothing.tasks) == []
    [request] = with_history.history
    sent_data = from_data_part(request.parts[0])
    assert sent_data["execution_key"] == "structured-task"
    assert sent_data["input"]["instructions"] == TASK_INPUT["instructions"]
    assert list(without.history) == []
    assert [len(t.history) for t in listed.tasks] == [1, 1]

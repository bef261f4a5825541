"""Every front door starts an execution through the one start operation (app.executions.start):
the same invalid input is refused with the same field errors whatever the door, and the same
Idempotency-Key answers the same execution whichever door it came in by."""

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from a2a.client import Client as A2AClient
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    Message,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
)
from a2a.utils.errors import InvalidParamsError
from httpx import AsyncClient
from markupsafe import escape
from mcp import Client as MCPClient
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.core.errors import Invalid
from app.executions.a2a_task import data_part
from app.protocols.executions import describe
from tests.console.test_console_pages import csrf_of, sign_in
from tests.factories import Account, Factory
from tests.protocols.helpers import execution_count

KEY = "structured-task"
VALID = {"instructions": "Describe Ada."}
# Refused by the definition's model, and by its start-only check (check_input).
INVALID_INPUTS = [
    pytest.param({"instructions": ""}, id="model"),
    pytest.param({"instructions": "x", "output_schema": {"type": "thing"}}, id="check_input"),
]


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def structured_task_agent(factory: Factory) -> tuple[Account, Agent]:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type=KEY, name="Tasks")
    return owner, agent


A2AConnect = Callable[[Account, Agent], AbstractAsyncContextManager[A2AClient]]
MCPConnect = Callable[[Account], AbstractAsyncContextManager[MCPClient]]


@pytest.fixture
def a2a(live_url: str) -> A2AConnect:
    @asynccontextmanager
    async def connected(account: Account, agent: Agent) -> AsyncIterator[A2AClient]:
        async with httpx.AsyncClient(headers=account.headers, timeout=30) as http:
            config = ClientConfig(httpx_client=http, supported_protocol_bindings=["JSONRPC"])
            client = await create_client(f"{live_url}/a2a/{agent.id}", config)
            try:
                yield client
            finally:
                await client.close()

    return connected


@pytest.fixture
def mcp(live_url: str) -> MCPConnect:
    @asynccontextmanager
    async def connected(account: Account) -> AsyncIterator[MCPClient]:
        http = httpx2.AsyncClient(headers=account.headers, timeout=30)
        async with (
            http,
            MCPClient(streamable_http_client(f"{live_url}/mcp", http_client=http)) as c,
        ):
            yield c

    return connected


def a2a_message(raw_input: Any, message_id: str | None = None) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=message_id or uuid.uuid4().hex,
            role=Role.ROLE_USER,
            parts=[data_part({"execution_key": KEY, "input": raw_input})],
        ),
        configuration=SendMessageConfiguration(return_immediately=True),
    )


async def a2a_task_id(client: A2AClient, request: SendMessageRequest) -> int:
    responses = [response async for response in client.send_message(request)]
    return int(responses[0].task.id)


@pytest.mark.parametrize("raw_input", INVALID_INPUTS)
async def test_the_same_invalid_input_gets_the_same_field_errors_at_every_door(
    raw_input: dict[str, Any],
    client: AsyncClient,
    factory: Factory,
    a2a: A2AConnect,
    mcp: MCPConnect,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await structured_task_agent(factory)

    rest_json = await client.post(
        url(agent.id), json={"execution_key": KEY, "input": raw_input}, headers=owner.headers
    )
    rest_multipart = await client.post(
        url(agent.id),
        data={"execution_key": KEY, "input": json.dumps(raw_input)},
        files={"unused": ("", b"")},  # forces multipart/form-data
        headers=owner.headers,
    )
    async with a2a(owner, agent) as a2a_client:
        with pytest.raises(InvalidParamsError) as a2a_refusal:
            await a2a_task_id(a2a_client, a2a_message(raw_input))
    async with mcp(owner) as mcp_client:
        mcp_result = await mcp_client.call_tool(f"agent_{agent.id}__{KEY}", raw_input)
    await sign_in(client, owner)
    console_url = f"/ui/agents/{agent.id}/start/{KEY}/"
    form = await client.get(console_url)
    console = await client.post(
        console_url,
        data={
            "csrf_token": csrf_of(form),
            **{f"input.{k}": _form_value(v) for k, v in raw_input.items()},
        },
    )

    assert rest_json.status_code == rest_multipart.status_code == console.status_code == 400
    body = rest_json.json()
    ((field, message),) = body["input"].items()
    assert rest_multipart.json() == body
    # The protocols say the same in one line (app.protocols.executions.describe).
    line = describe(Invalid(body))
    assert line == f"input.{field}: {message}"
    assert line in str(a2a_refusal.value)
    assert mcp_result.is_error
    assert mcp_result.content[0].text == line  # type: ignore[union-attr]
    # The console shows the message on its field.
    assert str(escape(message)) in console.text
    assert await execution_count(sessionmaker) == 0


def _form_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def test_the_same_idempotency_key_answers_the_same_execution_at_every_door(
    client: AsyncClient,
    factory: Factory,
    a2a: A2AConnect,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await structured_task_agent(factory)
    headers = {**owner.headers, "Idempotency-Key": "order-1"}

    first = await client.post(
        url(agent.id), json={"execution_key": KEY, "input": VALID}, headers=headers
    )
    as_multipart = await client.post(
        url(agent.id),
        data={"execution_key": KEY, "input": json.dumps(VALID)},
        files={"unused": ("", b"")},
        headers=headers,
    )
    await sign_in(client, owner)
    console_url = f"/ui/agents/{agent.id}/start/{KEY}/"
    form = await client.get(console_url)
    from_console = await client.post(
        console_url,
        data={
            "csrf_token": csrf_of(form),
            "idempotency_key": "order-1",
            "input.instructions": VALID["instructions"],
        },
    )
    # A2A's key is its message id, prefixed: a REST request with that key is the same start.
    async with a2a(owner, agent) as a2a_client:
        by_a2a = await a2a_task_id(a2a_client, a2a_message(VALID, message_id="m-1"))
        by_a2a_again = await a2a_task_id(a2a_client, a2a_message(VALID, message_id="m-1"))
    as_rest = await client.post(
        url(agent.id),
        json={"execution_key": KEY, "input": VALID},
        headers={**owner.headers, "Idempotency-Key": "a2a:m-1"},
    )

    execution_id = first.json()["id"]
    assert first.status_code == as_multipart.status_code == 202
    assert as_multipart.json()["id"] == execution_id
    assert as_multipart.headers["Idempotent-Replayed"] == "true"
    assert from_console.status_code == 303
    assert from_console.headers["location"].endswith(f"/ui/executions/{execution_id}/")
    assert by_a2a == by_a2a_again == as_rest.json()["id"] != execution_id
    assert as_rest.headers["Idempotent-Replayed"] == "true"
    assert await execution_count(sessionmaker) == 2


async def test_a_repeated_retry_answers_the_same_execution(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, agent = await structured_task_agent(factory)
    ended = await factory.execution(
        agent, owner, status="failed", failure_code="runtime_error", input=VALID
    )
    headers = {**owner.headers, "Idempotency-Key": "retry-1"}
    retry_url = f"/api/agentic-executions/{ended.id}/retry/"

    first = await client.post(retry_url, headers=headers)
    repeat = await client.post(retry_url, headers=headers)
    refused = await client.post(retry_url, json={"resume": True}, headers=headers)

    assert first.status_code == repeat.status_code == 202
    assert repeat.json()["id"] == first.json()["id"]
    assert repeat.headers["Idempotent-Replayed"] == "true"
    # resume is part of what a retry asks: another request under the same key.
    assert refused.status_code == 409
    assert "Idempotency-Key 'retry-1' was used" in refused.json()["detail"]
    assert await execution_count(sessionmaker) == 2

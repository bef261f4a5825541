"""MCP at /mcp, driven by the MCP SDK's own client over real HTTP, a worker running the jobs."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.definitions import registry
from app.definitions.base import ExecutionDefinition
from app.definitions.registry import find_definition
from app.events.listener import EventListener
from tests.factories import Account, Factory
from tests.protocols.helpers import TASK_INPUT, execution_count, next_execution
from tests.worker.harness import Script, Worker, answer, call, reload

ALL_DEFINITIONS = registry.all_definitions()


class SummariseInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


Connect = Callable[[Account], AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(live_url: str) -> Connect:
    @asynccontextmanager
    async def connected(account: Account) -> AsyncIterator[Client]:
        http = httpx2.AsyncClient(headers=account.headers, timeout=30)
        async with http, Client(streamable_http_client(f"{live_url}/mcp", http_client=http)) as c:
            yield c

    return connected


async def structured_task_agent(factory: Factory) -> tuple[Account, str]:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner), agent_type="structured-task", name="Tasks"
    )
    return owner, f"agent_{agent.id}__structured-task"


async def test_tools_list_one_tool_per_type_of_visible_agents_only(
    factory: Factory, connect: Connect
) -> None:
    owner, tool = await structured_task_agent(factory)
    stranger = await factory.account()
    hidden = await factory.agent(await factory.dataset(stranger), name="Theirs")

    async with connect(owner) as client:
        tools = (await client.list_tools()).tools

    assert [t.name for t in tools] == [tool]
    assert tools[0].input_schema["properties"]["instructions"]["type"] == "string"
    assert "Tasks" in (tools[0].title or "")
    assert all(str(hidden.id) not in t.name for t in tools)


async def test_built_in_types_declare_their_output_schema(
    factory: Factory, connect: Connect
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="catalog-enrichment")

    async with connect(owner) as client:
        (tool,) = (await client.list_tools()).tools

    assert tool.name == f"agent_{agent.id}__catalog-enrichment"
    assert (
        tool.output_schema
        == find_definition("catalog-enrichment", "catalog-enrichment").output_schema()
    )  # type: ignore[union-attr]
    assert tool.output_schema is not None


class Summary(BaseModel):
    title: str
    words: int


class Summarise(ExecutionDefinition):
    key = "summarise"
    agent_type = "summariser"
    name = "Summarise"
    description = "A title and a word count."
    Input = SummariseInput
    Output = Summary


@pytest.fixture
def summariser(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin type declaring its Output, registered for the test."""
    monkeypatch.setattr(registry, "all_definitions", lambda: (*ALL_DEFINITIONS, Summarise()))


async def test_a_declared_output_is_the_tools_output_schema_and_its_result_matches(
    summariser: None,
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="summariser")

    async with connect(owner) as client:
        (tool,) = (await client.list_tools()).tools
        call_task = asyncio.create_task(client.call_tool(tool.name, {"text": "Ada"}))
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(answer({"title": "Ada", "words": 1})))
        result = await call_task

    assert tool.name == f"agent_{agent.id}__summarise"
    assert tool.output_schema == Summary.model_json_schema()
    assert not result.is_error
    assert result.structured_content == {"title": "Ada", "words": 1}


async def test_call_answers_the_result_with_progress_notifications(
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, tool = await structured_task_agent(factory)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect(owner) as client:
        call_task = asyncio.create_task(
            client.call_tool(tool, TASK_INPUT, progress_callback=on_progress)
        )
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(answer({"name": "Ada", "age": 36})))
        result = await call_task

    assert not result.is_error
    assert result.structured_content == {"name": "Ada", "age": 36}
    assert json.loads(result.content[0].text) == {"name": "Ada", "age": 36}  # type: ignore[union-attr]
    # One notification per status event of the execution's log: none is skipped.
    assert progress == [
        (0, 2, f"Execution {execution.id} pending"),
        (1, 2, f"Execution {execution.id} in_progress"),
        (2, 2, f"Execution {execution.id} finished"),
    ]
    assert (await reload(sessionmaker, execution.id)).user_id == owner.user.id


async def test_failure_is_a_tool_error_naming_code_and_explanation(
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, tool = await structured_task_agent(factory)

    async with connect(owner) as client:
        call_task = asyncio.create_task(client.call_tool(tool, TASK_INPUT))
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(call("stop_execution", reason="Nobody knows Ada.")))
        result = await call_task

    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "validation_failed" in text
    assert "Nobody knows Ada." in text


async def test_bad_input_is_a_tool_error_naming_the_fields_and_starts_nothing(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    owner, tool = await structured_task_agent(factory)

    async with connect(owner) as client:
        result = await client.call_tool(tool, {"instructions": 5})

    assert result.is_error
    assert "input.instructions" in result.content[0].text  # type: ignore[union-attr]
    assert await execution_count(sessionmaker) == 0


async def test_another_users_agent_is_an_unknown_tool(
    factory: Factory, connect: Connect, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, tool = await structured_task_agent(factory)
    stranger = await factory.account()

    async with connect(stranger) as client:
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool(tool, TASK_INPUT)

    assert await execution_count(sessionmaker) == 0


async def test_past_the_wait_the_call_answers_the_execution_to_follow(
    factory: Factory,
    connect: Connect,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, tool = await structured_task_agent(factory)
    monkeypatch.setattr(settings, "protocol_wait_seconds", 0.3)

    async with connect(owner) as client:
        result = await client.call_tool(tool, TASK_INPUT)

    execution = await next_execution(sessionmaker)
    assert result.is_error
    assert result.structured_content == {"execution_id": execution.id, "status": "pending"}
    assert f"/api/agentic-executions/{execution.id}/" in result.content[0].text  # type: ignore[union-attr]


async def test_without_a_live_token_mcp_answers_401(live_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{live_url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Token nope"},
        )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


async def test_tool_calls_count_against_the_tokens_rate_limit(
    factory: Factory,
    connect: Connect,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, tool = await structured_task_agent(factory)
    monkeypatch.setattr(settings, "rate_limit_per_minute", 1)
    monkeypatch.setattr(settings, "protocol_wait_seconds", 0)

    async with connect(owner) as client:
        first = await client.call_tool(tool, TASK_INPUT)
        second = await client.call_tool(tool, TASK_INPUT)

    assert first.structured_content is not None
    assert first.structured_content["status"] == "pending"
    assert second.is_error
    assert "Rate limit exceeded" in second.content[0].text  # type: ignore[union-attr]
    assert await execution_count(sessionmaker) == 1


async def test_while_the_event_listener_is_down_a_call_still_answers_the_result(
    app: FastAPI,
    factory: Factory,
    connect: Connect,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, tool = await structured_task_agent(factory)
    listener: EventListener = app.state.event_listener

    @contextlib.contextmanager
    def never_woken(_execution_id: int) -> Iterator[asyncio.Event]:
        yield asyncio.Event()

    # No notification comes: the follower reads the log on its fallback timer.
    monkeypatch.setattr(listener, "subscribe", never_woken)
    monkeypatch.setattr(listener, "_listening", False)

    async with connect(owner) as client:
        call_task = asyncio.create_task(client.call_tool(tool, TASK_INPUT))
        execution = await next_execution(sessionmaker)
        await worker.run(execution.id, Script(answer({"name": "Ada", "age": 36})))
        result = await call_task

    assert not result.is_error
    assert result.structured_content == {"name": "Ada", "age": 36}

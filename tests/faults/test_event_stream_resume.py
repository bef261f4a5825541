"""An event stream whose API process is killed mid-stream resumes with Last-Event-ID on another
API process: nothing lost, nothing sent twice."""

import signal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import ExecutionEvent
from tests.factories import Factory
from tests.faults.conftest import Stack, Submitter, mock_agent
from tests.mock_openai import MockOpenAI
from tests.sse import Event, follow


async def test_a_stream_resumed_after_its_api_was_killed_loses_and_repeats_nothing(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 1.0  # the run goes on after the first API is gone
    owner, agent = await mock_agent(factory, mock_model.url)
    first_api = await stack.api()
    [execution_id] = await Submitter(first_api, owner, agent.id).submit(1)
    url = f"/api/agentic-executions/{execution_id}/events/"
    await stack.worker()

    before_kill: list[Event] = []
    async with (
        httpx.AsyncClient(base_url=first_api, headers=owner.headers, timeout=20) as api,
        api.stream("GET", url) as response,
    ):
        async for item in follow(response):
            if isinstance(item, Event):
                before_kill.append(item)
            if any(event.type == "trace" for event in before_kill):
                break
        [api_process] = [service for service in stack.services if service.name == "api"]
        api_process.signal(signal.SIGKILL)
        await api_process.exited(5)

    second_api = await stack.api()
    after_kill: list[Event] = []
    async with (
        httpx.AsyncClient(base_url=second_api, headers=owner.headers, timeout=20) as api,
        api.stream("GET", url, headers={"Last-Event-ID": str(before_kill[-1].id)}) as response,
    ):
        async for item in follow(response):
            if isinstance(item, Event):
                after_kill.append(item)

    received = before_kill + after_kill
    async with sessionmaker() as session:
        logged = (
            await session.scalars(
                select(ExecutionEvent.sequence)
                .where(ExecutionEvent.execution_id == execution_id)
                .order_by(ExecutionEvent.sequence)
            )
        ).all()
    assert [event.id for event in received] == list(logged) == list(range(1, len(logged) + 1))
    assert after_kill, "the run went on after the kill"
    assert [e.data["status"] for e in received if e.type == "status"] == [
        "pending",
        "in_progress",
        "finished",
    ]
    assert received[-1].type == "status"

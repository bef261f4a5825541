"""GET /api/agentic-executions/{id}/events/: the execution's persisted event log as SSE."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.events.models import ExecutionEvent
from app.main import create_app
from tests.factories import Account, Factory
from tests.sse import Event, follow, parse
from tests.worker.harness import Script, Worker, answer, call


def events_url(execution_id: int) -> str:
    return f"/api/agentic-executions/{execution_id}/events/"


async def start_task(client: AsyncClient, factory: Factory) -> tuple[Account, dict[str, Any]]:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={"execution_key": "structured-task", "input": {"instructions": "Say hi."}},
        headers=owner.headers,
    )
    assert started.status_code == 202, started.text
    return owner, started.json()


def script() -> Script:
    # One tool call (refused: there is no such tool, so the model is asked again), then the
    # result.
    return Script(call("lookup", sku="A-1"), answer({"hi": True}))


async def read_all(client: AsyncClient, owner: Account, execution_id: int, **headers: str) -> Any:
    response = await client.get(events_url(execution_id), headers={**owner.headers, **headers})
    assert response.status_code == 200, response.text
    return response, parse(response.text)


async def test_the_log_of_a_finished_execution_is_sent_in_order_and_the_stream_ends(
    client: AsyncClient, factory: Factory, worker: Worker
) -> None:
    owner, started = await start_task(client, factory)
    assert await worker.run(started["id"], script()) == "finished"

    response, events = await read_all(client, owner, started["id"])

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in response.headers
    assert [event.id for event in events] == list(range(1, len(events) + 1))
    kinds = [e.data["status"] if e.type == "status" else "trace" for e in events]
    # pending, in_progress, the trace entries, finished: the run's trace between.
    assert kinds[:2] == ["pending", "in_progress"]
    assert kinds[-1] == "finished"
    assert set(kinds[2:-1]) == {"trace"}
    assert events[0].data == started
    # The last event is the execution exactly as it is read.
    final = await client.get(f"/api/agentic-executions/{started['id']}/", headers=owner.headers)
    assert events[-1] == Event(len(events), "status", final.json())
    # The trace, between in_progress and the end, in the shape the conversation shows it.
    traced = [event.data for event in events if event.type == "trace"]
    conversation = await client.get(
        f"/api/conversations/{started['conversation']}/", headers=owner.headers
    )
    assert traced == conversation.json()["messages"]
    roles = [entry["role"] for entry in traced]
    assert "tool_call" in roles
    assert "retry" in roles


async def test_last_event_id_resumes_after_that_event(
    client: AsyncClient, factory: Factory, worker: Worker
) -> None:
    owner, started = await start_task(client, factory)
    await worker.run(started["id"], script())
    _, everything = await read_all(client, owner, started["id"])

    for seen in (1, 3, len(everything) - 1, len(everything)):
        _, rest = await read_all(client, owner, started["id"], **{"Last-Event-ID": str(seen)})
        assert rest == everything[seen:]


async def test_a_cancelled_pending_execution_has_two_statuses(
    client: AsyncClient, factory: Factory
) -> None:
    owner, started = await start_task(client, factory)
    cancelled = await client.post(
        f"/api/agentic-executions/{started['id']}/cancel/", headers=owner.headers
    )

    _, events = await read_all(client, owner, started["id"])

    assert [(e.id, e.type) for e in events] == [(1, "status"), (2, "status")]
    assert events[1].data == cancelled.json()
    assert events[1].data["failure_code"] == "cancelled"


async def test_the_stream_is_refused_to_others_and_for_a_bad_last_event_id(
    client: AsyncClient, factory: Factory
) -> None:
    owner, started = await start_task(client, factory)
    stranger = await factory.account()

    assert (await client.get(events_url(started["id"]))).status_code == 401
    assert (
        await client.get(events_url(started["id"]), headers=stranger.headers)
    ).status_code == 404
    bad = await client.get(
        events_url(started["id"]), headers={**owner.headers, "Last-Event-ID": "x"}
    )
    assert bad.status_code == 400
    assert "Last-Event-ID" in bad.json()
    # An id the stream never sent (the log has one event, pending).
    unknown = await client.get(
        events_url(started["id"]), headers={**owner.headers, "Last-Event-ID": "2"}
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"Last-Event-ID": ["No event 2 in this execution's stream."]}


async def next_event(events: Any) -> Event:
    while True:
        item = await asyncio.wait_for(anext(events), 10)
        if isinstance(item, Event):
            return item


async def test_a_live_stream_follows_the_run_as_it_happens(
    client: AsyncClient,
    live_url: str,
    factory: Factory,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, started = await start_task(client, factory)
    async with (
        httpx.AsyncClient(base_url=live_url, headers=owner.headers, timeout=20) as api,
        api.stream("GET", events_url(started["id"])) as response,
    ):
        events = follow(response)
        first = await next_event(events)
        assert (first.id, first.data["status"]) == (1, "pending")

        run = asyncio.create_task(worker.run(started["id"], script()))
        received = [first]
        async for item in events:
            if isinstance(item, Event):
                received.append(item)
        assert await run == "finished"

    async with sessionmaker() as session:
        logged = (
            await session.scalars(
                select(ExecutionEvent.sequence).where(ExecutionEvent.execution_id == started["id"])
            )
        ).all()
    assert [event.id for event in received] == sorted(logged)
    assert received[-1].data["status"] == "finished"


@asynccontextmanager
async def served(settings: Settings, **overrides: Any) -> AsyncIterator[str]:
    """A second app with other settings, served over HTTP on a free loopback port."""
    app = create_app(settings.model_copy(update=overrides))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def test_an_idle_stream_sends_keep_alive_comments(
    settings: Settings, factory: Factory, client: AsyncClient
) -> None:
    owner, started = await start_task(client, factory)
    async with (
        served(settings, event_stream_keep_alive_seconds=0.2) as url,
        httpx.AsyncClient(base_url=url, headers=owner.headers) as api,
        api.stream("GET", events_url(started["id"])) as response,
    ):
        events = follow(response)
        assert isinstance(await anext(events), Event)
        assert await asyncio.wait_for(anext(events), 5) == ": keep-alive"

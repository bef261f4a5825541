"""The real arq worker on the test Redis, and real HTTP to an OpenAI-compatible server."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from pydantic_ai.models import Model
from pydantic_ai.models.test import TestModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import utcnow
from app.executions.models import TERMINAL_STATUSES, AgenticExecution
from app.executions.queue import enqueue_execution, job_id_for
from tests.factories import Factory
from tests.mock_openai import ErrorReply, MockOpenAI, Reply, call, default_responder, tool_names
from tests.worker.harness import Worker, reload, roles, trace
from workers.process.execution_worker import ExecutionWorker
from workers.process.startup import worker_settings

UPDATED = "Product updated successfully"


@contextlib.asynccontextmanager
async def arq_worker(
    settings: Settings, model: Model | None = None
) -> AsyncIterator[ExecutionWorker]:
    extra = {"model_override": model} if model is not None else {}
    worker = ExecutionWorker(**worker_settings(settings, **extra), handle_signals=False)
    running = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        # arq's close() cancels jobs still wrapping up (storing their result in Redis).
        for _ in range(200):
            if all(t.done() for t in worker.tasks.values()):
                break
            await asyncio.sleep(0.01)
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def until_terminal(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int, within: float = 5
) -> AgenticExecution:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        execution = await reload(sessionmaker, execution_id)
        if execution.status in TERMINAL_STATUSES:
            return execution
        await asyncio.sleep(0.005)
    raise AssertionError(f"execution {execution_id} did not end within {within} s")


async def task(factory: Factory, **model_settings: Any) -> AgenticExecution:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner), agent_type="structured-task", model_settings=model_settings
    )
    return await factory.execution(
        agent, owner, input={"instructions": "Say hi.", "output_schema": None}
    )


async def test_an_enqueue_wakes_the_worker_before_its_next_poll(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The poll alone would take a minute: only the wake-up can start the execution sooner.
    polling_a_minute = settings.model_copy(update={"worker_poll_delay_seconds": 60})
    first, execution = await task(factory), await task(factory)
    model = TestModel(call_tools=[], custom_output_args={"hi": 1})
    async with arq_worker(polling_a_minute, model):
        # The first one is found by the worker's first poll; once it has ended, the worker has
        # polled again and waits a minute for the next.
        assert await enqueue_execution(queue, first.id)
        await until_terminal(sessionmaker, first.id, within=30)
        await asyncio.sleep(0.2)
        enqueued = time.perf_counter()
        assert await enqueue_execution(queue, execution.id)
        done = await until_terminal(sessionmaker, execution.id, within=30)
        ended = time.perf_counter() - enqueued

    assert (done.status, done.result, done.attempts) == ("finished", {"hi": 1}, 1)
    print(f"\nenqueue → finished {ended * 1000:.1f} ms")


async def test_worker_started_later_runs_executions_whose_enqueue_was_lost(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Never enqueued (Redis was down when it was created), older than the reconciler's grace.
    execution = await task(factory)
    async with sessionmaker() as session, session.begin():
        row = await session.get(AgenticExecution, execution.id)
        assert row is not None
        # Released to the workers then too (the API released it at insert).
        row.started_at = row.dispatched_at = utcnow() - timedelta(minutes=2)

    async with arq_worker(settings, TestModel(call_tools=[])):
        done = await until_terminal(sessionmaker, execution.id)

    assert done.status == "finished"


async def test_reconciler_enqueues_only_executions_stuck_without_a_job(
    worker: Worker,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # status, age, age of the last heartbeat
    ages = {
        "fresh pending": ("pending", timedelta(seconds=5), None),
        "stale pending": ("pending", timedelta(minutes=2), None),
        "running": ("in_progress", timedelta(hours=1), timedelta(seconds=5)),
        "orphaned running": ("in_progress", timedelta(hours=1), timedelta(minutes=1)),
        "finished": ("finished", timedelta(hours=1), timedelta(hours=1)),
    }
    executions = {name: await task(factory) for name in ages}
    async with sessionmaker() as session, session.begin():
        for name, (status, age, beat) in ages.items():
            row = await session.get(AgenticExecution, executions[name].id)
            assert row is not None
            row.status, row.started_at = status, utcnow() - age
            row.dispatched_at = row.started_at
            row.heartbeat_at = None if beat is None else utcnow() - beat

    enqueued = await worker.reconcile(queue)

    assert enqueued == 2
    queued = {job.job_id for job in await queue.queued_jobs()}
    assert queued == {
        job_id_for(executions["stale pending"].id),
        job_id_for(executions["orphaned running"].id),
    }
    # A second pass finds their jobs queued: nothing is enqueued twice.
    await worker.reconcile(queue)
    assert len(await queue.queued_jobs()) == 2


def enrichment_responder(request: dict[str, Any]) -> Reply:
    """Read the product, update it, report it: one step per request."""
    turns = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if turns == 0:
        return call("read_products", skus=["SKU-001"])
    if turns == 1:
        return call("update_product", sku="SKU-001", description="A kettle.")
    assert "final_result" in tool_names(request)
    return call("final_result", **{"SKU-001": UPDATED})


async def test_openai_compatible_server_over_http_runs_the_execution(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_openai.responder = enrichment_responder
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    await factory.product(dataset, "SKU-001", name="Kettle")
    agent = await factory.agent(
        dataset,
        model_settings={"name": "openai:gpt-4o-mini", "base_url": mock_openai.url},
    )
    execution = await factory.execution(
        agent, owner, input={"skus": ["SKU-001"], "additional_instructions": None}
    )

    await worker.run(execution.id)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"SKU-001": UPDATED})
    assert len(mock_openai.requests) == 3
    assert mock_openai.requests[0]["model"] == "gpt-4o-mini"
    assert done.usage is not None
    assert done.usage["requests"] == 3
    assert done.usage["input_tokens"] > 0
    assert done.usage["output_tokens"] > 0
    # The tool result the model got back is the one recorded.
    last = mock_openai.requests[-1]["messages"]
    assert last[-1]["role"] == "tool"
    assert last[-1]["content"] == "Product SKU-001 updated."
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages) == [
        "system",
        "user",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "result",
    ]
    assert messages[2].payload is not None
    assert messages[2].payload["model_name"] == "gpt-4o-mini"


async def test_provider_answering_500_fails_as_runtime_error_naming_it(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_openai.responder = lambda request: ErrorReply(500, "The engine is overloaded.")
    execution = await task(factory, name="openai:gpt-4o-mini", base_url=mock_openai.url)

    await worker.run(execution.id)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "runtime_error")
    assert done.failure_explanation is not None
    assert done.failure_explanation == (
        "ModelServerError: the model provider answered HTTP 500 (server error) "
        "for model gpt-4o-mini."
    )
    assert done.usage == {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost": None}


async def test_one_worker_runs_many_executions_at_once(
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    count = 20
    all_asked = asyncio.Event()
    asked: list[dict[str, Any]] = []

    async def answer_once_all_are_asked(request: dict[str, Any]) -> Reply:
        # No request is answered before every execution has asked: a worker that ran them one
        # after the other would leave the first waiting here, and it would fail.
        asked.append(request)
        if len(asked) == count:
            all_asked.set()
        async with asyncio.timeout(30):
            await all_asked.wait()
        return default_responder(request)

    async with MockOpenAI(answer_once_all_are_asked) as server:
        owner = await factory.account()
        agent = await factory.agent(
            await factory.dataset(owner),
            agent_type="structured-task",
            model_settings={"name": "openai:gpt-4o-mini", "base_url": server.url},
        )
        executions = [
            await factory.execution(agent, owner, input={"instructions": f"Task {n}."})
            for n in range(count)
        ]
        async with arq_worker(settings):
            for execution in executions:
                await enqueue_execution(queue, execution.id)
            done = [await until_terminal(sessionmaker, e.id, within=60) for e in executions]

    assert [(d.status, d.failure_code) for d in done] == [("finished", None)] * count
    assert len(server.requests) == count

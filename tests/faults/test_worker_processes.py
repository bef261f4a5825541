"""Workers killed, stopped and robbed of their Redis keys: every accepted execution still ends."""

import asyncio
import signal
import time

import httpx
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.queue import job_id_for
from tests.factories import Factory
from tests.faults.conftest import (
    Stack,
    Submitter,
    mock_agent,
    requests_per_label,
    terminal,
    until,
)
from tests.mock_openai import MockOpenAI
from tests.worker.harness import trace


async def model_calls(mock: MockOpenAI, count: int, within: float = 15) -> None:
    """Wait until the model server has received ``count`` requests."""
    deadline = time.monotonic() + within
    while len(mock.requests) < count:
        assert time.monotonic() < deadline, f"{len(mock.requests)} of {count} model calls"
        await asyncio.sleep(0.02)


async def test_executions_of_a_killed_worker_are_run_again_by_another_worker(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 30  # the first worker dies long before its model answers
    owner, agent = await mock_agent(factory, mock_model.url)
    submitter = Submitter(await stack.api(), owner, agent.id)
    first = await stack.worker("worker-1")
    ids = await submitter.submit(4)
    await model_calls(mock_model, 4)

    first.signal(signal.SIGKILL)
    await first.exited(5)
    mock_model.latency = 0.2
    await stack.worker("worker-2")
    started = time.monotonic()
    await until(sessionmaker, ids, lambda row: row.attempts == 2, within=30)
    taken_over = time.monotonic() - started
    rows = await until(sessionmaker, ids, terminal, within=30)
    ended = time.monotonic() - started

    print(f"\nkilled worker's executions: re-claimed {taken_over:.1f} s, ended {ended:.1f} s")
    assert [(row.status, row.attempts) for row in rows] == [("finished", 2)] * 4
    # Staleness 2.5 s, reconciling every 0.5 s: the takeover needs no job timeout.
    assert taken_over < 10
    # Each attempt asked the model once.
    assert sorted(requests_per_label(mock_model).values()) == [2, 2, 2, 2]
    messages = await trace(sessionmaker, rows[0].conversation_id)
    notes = [m.content for m in messages if m.role == "attempt"]
    assert notes == ["Attempt 2: an earlier attempt stopped before it finished."]


async def test_sigterm_lets_running_executions_finish_and_takes_no_new_ones(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 2
    owner, agent = await mock_agent(factory, mock_model.url)
    submitter = Submitter(await stack.api(), owner, agent.id)
    worker = await stack.worker()
    running = await submitter.submit(3)
    await model_calls(mock_model, 3)

    worker.signal(signal.SIGTERM)
    later = await submitter.submit(2, label="Later")
    finished = await until(sessionmaker, running, terminal, within=15)
    exit_code = await worker.exited(15)

    assert [(row.status, row.attempts) for row in finished] == [("finished", 1)] * 3
    assert exit_code == 0
    # Submitted during the shutdown: left for the next worker.
    assert {row.status for row in await until(sessionmaker, later, lambda r: True, 1)} == {
        "pending"
    }
    await stack.worker("next")
    done = await until(sessionmaker, later, terminal, within=15)
    assert {(row.status, row.attempts) for row in done} == {("finished", 1)}


async def test_sigterm_past_the_grace_hands_running_executions_to_another_worker(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 30
    owner, agent = await mock_agent(factory, mock_model.url)
    submitter = Submitter(await stack.api(), owner, agent.id)
    # A heartbeat would take a minute to go stale: only the hand-back makes the takeover quick.
    slow_to_stale = {"stale_after_seconds": 60, "worker_shutdown_grace_seconds": 1}
    leaving = await stack.worker("leaving", **slow_to_stale)
    ids = await submitter.submit(2)
    await model_calls(mock_model, 2)
    await stack.worker("staying", **slow_to_stale)

    leaving.signal(signal.SIGTERM)
    mock_model.latency = 0.2
    exit_code = await leaving.exited(15)
    rows = await until(sessionmaker, ids, terminal, within=15)

    assert exit_code == 0
    assert [(row.status, row.attempts) for row in rows] == [("finished", 2)] * 2
    messages = await trace(sessionmaker, rows[0].conversation_id)
    notes = [m.content for m in messages if m.role == "attempt"]
    assert notes == [
        "Attempt 1 was interrupted: its worker stopped before it finished. "
        "Another worker takes it over.",
        "Attempt 2: an earlier attempt stopped before it finished.",
    ]


async def test_jobs_redis_lost_are_enqueued_again_and_run_once(
    stack: Stack,
    settings: Settings,
    factory: Factory,
    queue: ArqRedis,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await mock_agent(factory, mock_model.url)
    # First in, first out: every job goes to Redis at once (with fair share, those submitted
    # while one waits in the queue wait in PostgreSQL: nothing of theirs for Redis to lose).
    submitter = Submitter(await stack.api(fair_share=False), owner, agent.id)
    ids = await submitter.submit(3)  # no worker yet: queued
    assert await queue.zcard(settings.queue_name) == 3
    # As after a Redis restart without persistence: one job entirely gone, one gone from the
    # queue but not its job key (arq would refuse to enqueue that id again), one intact.
    gone, half_gone = job_id_for(ids[0]), job_id_for(ids[1])
    await queue.delete(job_key_prefix + gone)
    await queue.zrem(settings.queue_name, gone, half_gone)

    await stack.worker()
    rows = await until(sessionmaker, ids, terminal, within=20)

    assert [(row.status, row.attempts) for row in rows] == [("finished", 1)] * 3
    assert sorted(requests_per_label(mock_model).values()) == [1, 1, 1]


async def test_redis_wiped_mid_run_spares_running_executions_and_requeues_waiting_ones(
    stack: Stack,
    factory: Factory,
    queue: ArqRedis,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 4
    owner, agent = await mock_agent(factory, mock_model.url)
    submitter = Submitter(await stack.api(), owner, agent.id)
    await stack.worker(worker_concurrency=3)
    running = await submitter.submit(3)
    await model_calls(mock_model, 3)
    waiting = await submitter.submit(3, label="Waiting")  # queued: the worker is full

    await queue.flushdb()  # the test run's own Redis database
    mock_model.latency = 0.2
    rows = await until(sessionmaker, running + waiting, terminal, within=30)

    # The running ones (live heartbeat) were left alone; the waiting ones ran once each.
    assert [(row.status, row.attempts) for row in rows] == [("finished", 1)] * 6
    assert sorted(requests_per_label(mock_model).values()) == [1] * 6


async def test_cancelling_through_the_api_stops_a_running_execution_within_seconds(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 30
    owner, agent = await mock_agent(factory, mock_model.url)
    submitter = Submitter(await stack.api(), owner, agent.id)
    await stack.worker()
    [execution_id] = await submitter.submit(1)
    await model_calls(mock_model, 1)

    asked = time.monotonic()
    async with httpx.AsyncClient(base_url=stack.api_url, headers=owner.headers) as api:
        response = await api.post(f"/api/agentic-executions/{execution_id}/cancel/")
    [row] = await until(sessionmaker, [execution_id], terminal, within=10)
    took = time.monotonic() - asked

    print(f"\ncancel → failed/cancelled in {took:.2f} s")
    assert response.status_code == 202
    assert (row.status, row.failure_code) == ("failed", "cancelled")
    assert took < 3

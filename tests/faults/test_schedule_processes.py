"""Schedules with two API processes and two workers, a worker SIGKILLed and Redis emptied
between ticks: every tick starts exactly one execution, and each one ends."""

import asyncio
import signal
import time
from datetime import UTC, datetime

import httpx
from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.executions.models import AgenticExecution
from app.schedules.models import AgenticExecutionSchedule, ScheduleTick
from tests.factories import Factory
from tests.faults.conftest import Stack, mock_agent, terminal, until
from tests.mock_openai import MockOpenAI

SCHEDULES = 4


async def started_per_schedule(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> dict[int, list[int]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AgenticExecution.schedule_id, AgenticExecution.id)
            .where(AgenticExecution.schedule_id.is_not(None))
            .order_by(AgenticExecution.id)
        )
        found: dict[int, list[int]] = {}
        for schedule_id, execution_id in rows:
            assert schedule_id is not None
            found.setdefault(schedule_id, []).append(execution_id)
        return found


async def wait_for_counts(
    sessionmaker: async_sessionmaker[AsyncSession], expected: dict[int, int], within: float
) -> dict[int, list[int]]:
    deadline = time.monotonic() + within
    while True:
        found = await started_per_schedule(sessionmaker)
        counts = {schedule: len(found.get(schedule, [])) for schedule in expected}
        assert all(counts[s] <= expected[s] for s in expected), f"a tick ran twice: {counts}"
        if counts == expected:
            return found
        assert time.monotonic() < deadline, f"not reached within {within} s: {counts}"
        await asyncio.sleep(0.1)


async def test_two_apis_and_two_workers_start_one_execution_a_tick_across_a_kill_and_redis_emptied(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    stack.overrides["schedule_poll_seconds"] = 0.2
    owner, agent = await mock_agent(factory, mock_model.url)
    first_api, second_api = await stack.api(), await stack.api()
    first_worker = await stack.worker("worker-a")
    await stack.worker("worker-b")
    ids = []
    async with httpx.AsyncClient(headers=owner.headers, timeout=30) as api:
        for number in range(SCHEDULES):
            base = (first_api, second_api)[number % 2]
            created = await api.post(
                f"{base}/api/agents/{agent.id}/agentic-execution-schedules/",
                json={
                    "execution_key": "structured-task",
                    "input": {"instructions": f"Scheduled {number}."},
                    "cron": "* * * * *",
                },
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        # The first tick is due now (the next one comes at the next minute, as the cron says).
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(AgenticExecutionSchedule).values(
                    next_run_at=datetime.now(UTC).replace(second=0, microsecond=0)
                )
            )
        first_round = await wait_for_counts(sessionmaker, dict.fromkeys(ids, 1), within=30)
        await until(sessionmaker, [e for run in first_round.values() for e in run], terminal, 60)

        # Between the ticks: a worker is killed, Redis loses everything, and the last schedule
        # is paused through the other API process.
        first_worker.signal(signal.SIGKILL)
        await first_worker.exited(5)
        await queue.flushdb()
        paused = await api.patch(
            f"{second_api}/api/agentic-execution-schedules/{ids[-1]}/", json={"enabled": False}
        )
        assert paused.status_code == 200

        # The next minute's tick, from the worker left.
        expected = {**dict.fromkeys(ids[:-1], 2), ids[-1]: 1}
        second_round = await wait_for_counts(sessionmaker, expected, within=90)
        executions = [e for run in second_round.values() for e in run]
        rows = await until(sessionmaker, executions, terminal, 60)
        assert {row.status for row in rows} == {"finished"}
        assert {row.attempts for row in rows} == {1}

        # One tick row per execution, at distinct tick times, each naming its execution.
        async with sessionmaker() as session:
            ticks = (await session.execute(select(ScheduleTick))).scalars().all()
            started = [t for t in ticks if t.outcome == "started"]
            assert sorted(t.execution_id or 0 for t in started) == sorted(executions)
            assert len({(t.schedule_id, t.tick_at) for t in started}) == len(started)
            assert await session.scalar(select(func.count()).select_from(AgenticExecution)) == len(
                executions
            )
        listed = await api.get(f"{first_api}/api/agentic-executions/?schedule_id={ids[0]}")
        assert [e["id"] for e in listed.json()["results"]] == second_round[ids[0]][::-1]

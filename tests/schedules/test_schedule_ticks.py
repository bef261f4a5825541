"""A schedule's ticks as the workers run them (app/schedules/ticks.py): one execution a tick
however many passes race for it, run as its owner, and a trace of every tick that did not
start one (its input no longer valid, a quota, missed while the service was down, a disabled
owner)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from httpx import AsyncClient
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.executions.queue import job_id_for
from app.schedules import ticks
from app.schedules.models import AgenticExecutionSchedule
from app.schedules.ticks import run_due_ticks
from tests.factories import Account, Factory
from tests.schedules.test_schedules_api import GOOD, create, owner_and_agent, parsed
from tests.worker.harness import Script, Worker, answer


def this_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


async def make_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    schedule_id: int,
    tick_at: datetime,
    **values: Any,
) -> None:
    """The tick ``tick_at`` is the schedule's next one (as if its time had come)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AgenticExecutionSchedule)
            .where(AgenticExecutionSchedule.id == schedule_id)
            .values(next_run_at=tick_at, **values)
        )


async def executions_of(
    client: AsyncClient, owner: Account, schedule_id: int
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/agentic-executions/?schedule_id={schedule_id}", headers=owner.headers
    )
    assert response.status_code == 200
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def ticks_of(client: AsyncClient, owner: Account, schedule_id: int) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/agentic-execution-schedules/{schedule_id}/ticks/", headers=owner.headers
    )
    assert response.status_code == 200
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_a_due_tick_starts_one_execution_that_finishes(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
    worker: Worker,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    tick = this_minute()
    await make_due(sessionmaker, schedule["id"], tick)

    ran = await run_due_ticks(sessionmaker, queue, settings)

    assert [(run.schedule_id, run.tick_at, run.outcome) for run in ran] == [
        (schedule["id"], tick, "started")
    ]
    [execution] = await executions_of(client, owner, schedule["id"])
    assert (execution["status"], execution["schedule_id"]) == ("pending", schedule["id"])
    # Validated as a start is: the type's defaults filled in.
    assert execution["input"] == {**GOOD["input"], "output_schema": None}
    # Handed to the workers after the tick's commit, as any start is.
    assert await queue.exists(f"arq:job:{job_id_for(execution['id'])}")
    assert await worker.run(execution["id"], Script(answer({"enriched": 3}))) == "finished"
    done = await client.get(f"/api/agentic-executions/{execution['id']}/", headers=owner.headers)
    assert (done.json()["status"], done.json()["result"]) == ("finished", {"enriched": 3})

    after = (
        await client.get(
            f"/api/agentic-execution-schedules/{schedule['id']}/", headers=owner.headers
        )
    ).json()
    assert parsed(after["last_run_at"]) == tick
    assert after["last_execution_id"] == execution["id"]
    assert parsed(after["next_run_at"]) == tick + timedelta(minutes=1)
    [tick_row] = await ticks_of(client, owner, schedule["id"])
    assert (tick_row["outcome"], tick_row["execution_id"]) == ("started", execution["id"])
    # Nothing else is due: another pass starts nothing.
    assert await run_due_ticks(sessionmaker, queue, settings) == []


async def test_passes_racing_for_a_tick_start_exactly_one_execution(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedules = [await create(client, owner, agent_id, cron="* * * * *") for _ in range(5)]
    tick = this_minute()
    for schedule in schedules:
        await make_due(sessionmaker, schedule["id"], tick)

    # Eight workers' passes at once.
    await asyncio.gather(*(run_due_ticks(sessionmaker, queue, settings) for _ in range(8)))
    for schedule in schedules:
        assert len(await executions_of(client, owner, schedule["id"])) == 1

    # The same tick due again (a clock moved back, a change raced the claim): its row says it
    # ran already, and no second execution is started.
    for schedule in schedules:
        await make_due(sessionmaker, schedule["id"], tick)
    await asyncio.gather(*(run_due_ticks(sessionmaker, queue, settings) for _ in range(8)))
    for schedule in schedules:
        assert len(await executions_of(client, owner, schedule["id"])) == 1
        assert len(await ticks_of(client, owner, schedule["id"])) == 1


async def test_a_tick_whose_input_no_longer_validates_records_a_failed_execution(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    # As if the execution type had changed since: the stored input no longer fits it.
    await make_due(
        sessionmaker, schedule["id"], this_minute(), input={"instructions": "", "colour": "red"}
    )

    [run] = await run_due_ticks(sessionmaker, queue, settings)

    assert run.outcome == "failed"
    [execution] = await executions_of(client, owner, schedule["id"])
    assert (execution["status"], execution["failure_code"]) == ("failed", "invalid_input")
    assert "input.instructions" in execution["failure_explanation"]
    assert "input.colour" in execution["failure_explanation"]
    assert execution["input"] == {"instructions": "", "colour": "red"}
    [tick_row] = await ticks_of(client, owner, schedule["id"])
    assert tick_row["outcome"] == "failed"
    assert tick_row["execution_id"] == execution["id"]
    assert "input.instructions" in tick_row["detail"]
    # It still ticks: the owner may mend the input.
    after = (
        await client.get(
            f"/api/agentic-execution-schedules/{schedule['id']}/", headers=owner.headers
        )
    ).json()
    assert after["enabled"] is True
    assert after["next_run_at"] is not None


async def test_a_tick_over_the_owners_quota_records_a_failed_execution(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    admin = await factory.account(admin=True)
    quota = await client.put(
        f"/api/users/{owner.user.id}/quotas/",
        json={"max_executions_per_day": 1},
        headers=admin.headers,
    )
    assert quota.status_code == 200
    first = await create(client, owner, agent_id, cron="* * * * *")
    second = await create(client, owner, agent_id, cron="* * * * *")
    tick = this_minute()
    await make_due(sessionmaker, first["id"], tick)
    await run_due_ticks(sessionmaker, queue, settings)
    await make_due(sessionmaker, second["id"], tick)
    await run_due_ticks(sessionmaker, queue, settings)

    [ran] = await executions_of(client, owner, first["id"])
    assert ran["status"] == "pending"
    [refused] = await executions_of(client, owner, second["id"])
    assert (refused["status"], refused["failure_code"]) == ("failed", "quota_exceeded")
    assert "max_executions_per_day" in refused["failure_explanation"]


async def test_a_disabled_owners_schedules_stop_ticking(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    admin = await factory.account(admin=True)
    disabled = await client.patch(
        f"/api/users/{owner.user.id}/", json={"is_active": False}, headers=admin.headers
    )
    assert disabled.status_code == 200
    await make_due(sessionmaker, schedule["id"], this_minute())

    [run] = await run_due_ticks(sessionmaker, queue, settings)

    assert run.outcome == "skipped"
    assert await executions_of(client, admin, schedule["id"]) == []
    paused = (
        await client.get(
            f"/api/agentic-execution-schedules/{schedule['id']}/", headers=admin.headers
        )
    ).json()
    assert (paused["enabled"], paused["paused_reason"], paused["next_run_at"]) == (
        False,
        "owner_disabled",
        None,
    )
    [tick_row] = await ticks_of(client, admin, schedule["id"])
    assert (tick_row["outcome"], tick_row["execution_id"]) == ("skipped", None)
    assert "disabled" in tick_row["detail"]
    assert await run_due_ticks(sessionmaker, queue, settings) == []


async def test_an_owner_who_lost_the_agent_has_the_schedule_paused(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    admin = await factory.account(admin=True)
    assert (
        await client.delete(f"/api/agents/{agent_id}/", headers=admin.headers)
    ).status_code == 204
    await make_due(sessionmaker, schedule["id"], this_minute())

    [run] = await run_due_ticks(sessionmaker, queue, settings)

    assert run.outcome == "skipped"
    async with sessionmaker() as session:
        paused = await session.scalar(
            select(AgenticExecutionSchedule).where(AgenticExecutionSchedule.id == schedule["id"])
        )
    assert paused is not None
    assert (paused.enabled, paused.paused_reason) == (False, "agent_not_visible")


async def test_ticks_missed_by_more_than_a_period_are_skipped_and_the_latest_runs_once(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    hourly = await create(client, owner, agent_id, cron="0 * * * *")
    late = await create(client, owner, agent_id, cron="0 * * * *")
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # The service was down for three hours and more; and for less than one period.
    await make_due(sessionmaker, hourly["id"], this_hour - timedelta(hours=3))
    await make_due(sessionmaker, late["id"], this_hour)

    ran = await run_due_ticks(sessionmaker, queue, settings)

    assert sorted((run.schedule_id, run.tick_at) for run in ran) == [
        (hourly["id"], this_hour), (late["id"], this_hour),
    ]  # fmt: skip
    assert len(await executions_of(client, owner, hourly["id"])) == 1
    assert len(await executions_of(client, owner, late["id"])) == 1
    started, skipped = await ticks_of(client, owner, hourly["id"])
    assert (parsed(started["tick_at"]), started["outcome"]) == (this_hour, "started")
    assert (parsed(skipped["tick_at"]), skipped["outcome"]) == (
        this_hour - timedelta(hours=3),
        "skipped",
    )
    assert skipped["detail"].startswith("3 tick(s)")
    assert [t["outcome"] for t in await ticks_of(client, owner, late["id"])] == ["started"]


async def test_deleting_a_schedule_keeps_its_executions(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    await make_due(sessionmaker, schedule["id"], this_minute())
    await run_due_ticks(sessionmaker, queue, settings)
    [execution] = await executions_of(client, owner, schedule["id"])

    deleted = await client.delete(
        f"/api/agentic-execution-schedules/{schedule['id']}/", headers=owner.headers
    )

    assert deleted.status_code == 204
    kept = await client.get(f"/api/agentic-executions/{execution['id']}/", headers=owner.headers)
    assert (kept.status_code, kept.json()["schedule_id"]) == (200, None)


async def test_a_tick_that_raises_pauses_its_schedule_and_the_others_still_tick(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    broken = await create(client, owner, agent_id, cron="* * * * *")
    healthy = await create(client, owner, agent_id, cron="* * * * *")
    tick = this_minute()
    # The broken one is due first, so that it would hold up every pass.
    await make_due(sessionmaker, broken["id"], tick - timedelta(seconds=30))
    await make_due(sessionmaker, healthy["id"], tick)
    real_start = ticks.start_execution

    async def start_or_fail(*args: Any, **kwargs: Any) -> Any:
        command = args[3]
        if command.schedule_id == broken["id"]:
            raise RuntimeError("an execution type's bug")
        return await real_start(*args, **kwargs)

    monkeypatch.setattr(ticks, "start_execution", start_or_fail)

    ran = await run_due_ticks(sessionmaker, queue, settings)

    assert {run.schedule_id: run.outcome for run in ran} == {
        broken["id"]: "skipped", healthy["id"]: "started",
    }  # fmt: skip
    paused = (
        await client.get(f"/api/agentic-execution-schedules/{broken['id']}/", headers=owner.headers)
    ).json()
    assert (paused["enabled"], paused["paused_reason"], paused["next_run_at"]) == (
        False,
        "tick_error",
        None,
    )
    [tick_row] = await ticks_of(client, owner, broken["id"])
    assert tick_row["outcome"] == "skipped"
    assert "RuntimeError" in tick_row["detail"]
    assert await executions_of(client, owner, broken["id"]) == []
    assert len(await executions_of(client, owner, healthy["id"])) == 1


async def test_a_connection_lost_mid_tick_leaves_nothing_and_the_next_pass_runs_it_once(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    tick = this_minute()
    await make_due(sessionmaker, schedule["id"], tick)
    real_start = ticks.start_execution

    async def start_then_lose_the_server(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        started = await real_start(session, *args, **kwargs)
        # As PostgreSQL restarting does: the tick's connection is gone before its commit.
        await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return started

    monkeypatch.setattr(ticks, "start_execution", start_then_lose_the_server)
    with pytest.raises(DBAPIError):
        await run_due_ticks(sessionmaker, queue, settings)

    # Nothing of the tick was stored: no execution, no claim, the schedule still due.
    assert await executions_of(client, owner, schedule["id"]) == []
    assert await ticks_of(client, owner, schedule["id"]) == []
    monkeypatch.setattr(ticks, "start_execution", real_start)
    [run] = await run_due_ticks(sessionmaker, queue, settings)
    assert (run.tick_at, run.outcome) == (tick, "started")
    assert len(await executions_of(client, owner, schedule["id"])) == 1
    assert await run_due_ticks(sessionmaker, queue, settings) == []


async def test_a_tick_is_stored_while_redis_is_down_even_where_clients_are_refused(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, cron="* * * * *")
    await make_due(sessionmaker, schedule["id"], this_minute())
    refusing = settings.model_copy(update={"reject_when_queue_down": True})
    dead_queue = ArqRedis.from_url("redis://127.0.0.1:1/0")

    try:
        [run] = await run_due_ticks(sessionmaker, dead_queue, refusing)
    finally:
        await dead_queue.aclose()

    # Stored (the reconciler enqueues it once Redis is back), not refused with a 503 nobody
    # would read.
    assert run.outcome == "started"
    [execution] = await executions_of(client, owner, schedule["id"])
    assert execution["status"] == "pending"

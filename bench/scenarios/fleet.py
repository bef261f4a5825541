"""fleet: several workers, many executions held by the model, on a Redis of their own.

For each fleet (1, 2, 4, 8 workers of 100 slots; quick: 1, 2, 4 of 40), executions filling
70 % of its slots are submitted while the model server holds every call; the scenario waits
until all of them are in flight at once (the model's count of calls waiting), holds them for
a few seconds, releases them and waits until all are terminal. Then the target case: 6 workers
of 100 slots and 560 executions, all in flight at once (quick: 6 x 40, 224).

A private redis-server (bench/stack.py ``start_redis``) serves the fleet and an API process
of its own, so that ``INFO commandstats`` (commands, including those scripts run) and its CPU
count this fleet only. Reported per fleet: Redis commands per execution over the whole run
(submit to terminal), Redis commands a second while every execution is held (what polling
costs with that many running), and Redis CPU per execution. Target: all held executions in
flight in every fleet, and commands per execution that do not grow with the fleet (the largest
within 1.5x of the smallest, for the noise of a shared machine).
"""

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from bench.context import BenchRun
from bench.cpu import process_seconds
from bench.driver import submit
from bench.scenarios import Result

HOLD_SECONDS = 5.0
FILL = 0.7
GROWTH_TARGET = 1.5
SUBMIT_LANES = 20
IN_FLIGHT_TIME_LIMIT = 180.0


async def _commands(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    names = set(after) | set(before)
    changed = {n: after.get(n, 0) - before.get(n, 0) for n in names}
    return {n: c for n, c in sorted(changed.items(), key=lambda kv: -kv[1]) if c}


async def _until_in_flight(bench: BenchRun, count: int) -> float | None:
    assert bench.model is not None
    started = time.perf_counter()
    while time.perf_counter() - started < IN_FLIGHT_TIME_LIMIT:
        if (await bench.model.stats())["in_flight"] >= count:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    return None


async def _one_fleet(
    bench: BenchRun, workers: int, slots: int, held: int, redis_url: str, redis_pid: int
) -> dict[str, Any]:
    assert bench.model is not None
    stack = bench.stack
    redis: Redis = Redis.from_url(redis_url)
    await redis.flushdb()
    processes = await stack.start_workers(
        workers, redis_url, AGENTRUN_WORKER_CONCURRENCY=str(slots)
    )
    api = bench.facts["fleet_api"]
    try:
        await bench.model.configure(hold=True, reset=True)
        commands_before = await _commands(redis)
        redis_cpu_before = process_seconds(redis_pid)
        meter = bench.cpu_meter(api=api, **{p.name: p for p in processes})
        async with bench.lanes(bench.admin_token, SUBMIT_LANES, api.url) as lanes:
            posted, submit_wall = await lanes.run(
                held, lambda client: submit(client, bench.agent_id), time_limit=120
            )
        ids = [int(p.body["id"]) for p in posted if p.status_code == 202]
        to_all_in_flight = await _until_in_flight(bench, len(ids))
        in_flight = (await bench.model.stats())["in_flight"]
        hold_before = await _commands(redis)
        await asyncio.sleep(HOLD_SECONDS)
        held_commands = sum(_delta(await _commands(redis), hold_before).values())
        await bench.model.configure(hold=False)
        terminal, failed, _ = await bench.wait_terminal(ids, 120)
        cpu = meter.stop()
        commands = _delta(await _commands(redis), commands_before)
        redis_cpu = process_seconds(redis_pid) - redis_cpu_before
    finally:
        await bench.model.configure(hold=False)
        for process in processes:
            stack.stop(process)
        await redis.aclose()
    total = sum(commands.values())
    return {
        "workers": workers,
        "slots_per_worker": slots,
        "held": held,
        "submitted": len(ids),
        "submit_wall_s": round(submit_wall, 2),
        "all_in_flight": to_all_in_flight is not None,
        "in_flight_at_once": in_flight,
        "seconds_to_all_in_flight": None
        if to_all_in_flight is None
        else round(to_all_in_flight, 2),
        "terminal": terminal,
        "failed": failed,
        "redis_commands_per_execution": round(total / max(1, len(ids)), 1),
        "redis_commands_per_s_while_held": round(held_commands / HOLD_SECONDS, 1),
        "redis_commands_per_s_while_held_per_worker": round(
            held_commands / HOLD_SECONDS / workers, 1
        ),
        "redis_cpu_ms_per_execution": round(1000 * redis_cpu / max(1, len(ids)), 3),
        "top_commands_per_execution": {
            name: round(count / max(1, len(ids)), 2) for name, count in list(commands.items())[:12]
        },
        "cpu_s": cpu,
    }


async def run(bench: BenchRun) -> Result:
    quick = bench.sizes.fleet_slots < 100
    slots = bench.sizes.fleet_slots
    redis_process, redis_url = bench.stack.start_redis("fleet-redis")
    bench.facts["fleet_api"] = await bench.stack.start_uvicorn(
        "fleet-api",
        "app.main:app",
        env=bench.stack.env(AGENTRUN_REDIS_URL=redis_url),
        ready_path="/readyz",
    )
    fleets: list[dict[str, Any]] = []
    try:
        for workers in bench.sizes.fleet_workers:
            held = round(FILL * workers * slots)
            print(f"  {workers} workers x {slots} slots, {held} held", flush=True)
            fleets.append(
                await _one_fleet(bench, workers, slots, held, redis_url, redis_process.pid)
            )
            await bench.discard_open_executions()
        target_held = round(560 * slots / 100)
        print(f"  target: 6 workers x {slots} slots, {target_held} held", flush=True)
        target = await _one_fleet(bench, 6, slots, target_held, redis_url, redis_process.pid)
    finally:
        bench.stack.stop(bench.facts.pop("fleet_api"))
        bench.stack.stop(redis_process)
    per_execution = [f["redis_commands_per_execution"] for f in [*fleets, target]]
    growth = max(per_execution) / max(0.1, min(per_execution))
    all_in_flight = all(f["all_in_flight"] for f in [*fleets, target])
    figures = {
        "fleets": fleets,
        "target_case": target,
        "commands_per_execution_growth": round(growth, 2),
        "scaled_down": quick,
    }
    notes = []
    if quick:
        notes.append(f"quick: the target case is scaled to 6 x {slots} slots, {target_held} held")
    if not all_in_flight:
        notes.append("some fleet did not have every held execution in flight at once")
    return Result(
        figures=figures,
        ratio=round(growth, 2),
        target=f"all held in flight; commands/exec growth <= {GROWTH_TARGET}",
        met=all_in_flight and growth <= GROWTH_TARGET,
        notes=notes,
    )

"""schedules: N schedules (1,000 at full size) due at the same minute, ticked by one worker.

- ``ticks``: the schedules are inserted due now (``* * * * *``, ``next_run_at`` this minute),
  then a fresh worker (``AGENTRUN_SCHEDULE_POLL_SECONDS=1``) claims every tick: each in a
  transaction of its own (the row locked, the tick's row inserted, the execution stored by
  the start operation as the owner, ``next_run_at`` moved). Timed by PostgreSQL's clock, from
  the first tick's claim to the last: ticks per second of one worker. The worker has one slot
  and the model holds every call meanwhile, so that the runs the ticks start take no CPU from
  the ticks.
- ``idle_pass``: what every worker pays every poll when nothing is due: the due query, timed
  over 200 runs with the N schedules waiting for their next minute.
- baseline, in the same run: N single starts (``POST .../agentic-executions/``) at
  concurrency 50 (no worker running); the ratio is ticks per second over starts per second.
  Target: ticks keep up with single starts (ratio >= 0.5): a worker ticks a thousand
  schedules due at 2:00 within seconds.
"""

import asyncio
import json
import time
from typing import Any

from bench.context import BenchRun
from bench.driver import EXECUTION_BODY, status_codes, submit
from bench.scenarios import Result

TIME_LIMIT = 120.0
BASELINE_CONCURRENCY = 50
IDLE_SAMPLES = 200
TARGET_RATIO = 0.5

INSERT_SCHEDULES = """
INSERT INTO agentic_execution_schedules
    (agent_id, user_id, execution_key, input, cron, timezone, enabled, next_run_at,
     created_at, updated_at)
SELECT $1, $2, $3, $4::jsonb, '* * * * *', 'UTC', true, date_trunc('minute', now()), now(), now()
FROM generate_series(1, $5)
"""
DUE = (
    "SELECT id FROM agentic_execution_schedules WHERE next_run_at <= statement_timestamp() "
    "ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED"
)


async def _ticks(bench: BenchRun, count: int) -> dict[str, Any]:
    # One slot: the runs the ticks start (their set-up before the held model call) do not
    # share the worker's CPU with the ticks.
    worker = await bench.stack.start_worker(
        AGENTRUN_SCHEDULE_POLL_SECONDS="1", AGENTRUN_WORKER_CONCURRENCY="1"
    )
    try:
        # All due at once (one statement), for the worker's next poll.
        await bench.pool.execute(
            INSERT_SCHEDULES,
            bench.agent_id,
            bench.user_id,
            EXECUTION_BODY["execution_key"],
            json.dumps(EXECUTION_BODY["input"]),
            count,
        )
        deadline = time.perf_counter() + TIME_LIMIT
        while True:
            # A tick that runs late (the minute turned meanwhile) runs the new minute's tick
            # instead: one started tick per schedule either way.
            row = await bench.pool.fetchrow(
                "SELECT count(DISTINCT schedule_id) AS started,"
                " extract(epoch FROM max(claimed_at) - min(claimed_at)) AS spread"
                " FROM agentic_execution_schedule_ticks WHERE execution_id IS NOT NULL"
            )
            if row["started"] >= count or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        bench.stack.stop(worker)
    spread = float(row["spread"] or 0) or 1e-3
    return {
        "schedules": count,
        "started": row["started"],
        "seconds": round(spread, 2),
        "ticks_per_s": round(row["started"] / spread),
    }


async def _idle_pass(bench: BenchRun) -> dict[str, Any]:
    async with bench.pool.acquire() as connection:
        started = time.perf_counter()
        for _ in range(IDLE_SAMPLES):
            async with connection.transaction():
                await connection.fetch(DUE)
        seconds = time.perf_counter() - started
    return {"ms_per_pass": round(seconds * 1000 / IDLE_SAMPLES, 3)}


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    count = bench.sizes.schedules
    notes: list[str] = []
    await bench.model.configure(hold=True)
    try:
        ticks = await _ticks(bench, count)
        idle = await _idle_pass(bench)
        async with bench.lanes(bench.admin_token, BASELINE_CONCURRENCY) as lanes:
            posts, wall = await lanes.run(
                count, lambda c: submit(c, bench.agent_id), time_limit=TIME_LIMIT
            )
    finally:
        await bench.model.configure(hold=False)
    accepted = sum(1 for post in posts if post.status_code == 202)
    baseline = {
        "posts": len(posts),
        "accepted": accepted,
        "status_codes": status_codes(posts),
        "starts_per_s": round(accepted / wall),
    }
    await bench.pool.execute("DELETE FROM agentic_execution_schedules")
    discarded = await bench.discard_open_executions()
    notes.append(f"{discarded} executions were failed as bench_discarded afterwards")
    if ticks["started"] < count:
        notes.append(f"only {ticks['started']} of {count} ticks started within {TIME_LIMIT} s")
    ratio = (
        round(ticks["ticks_per_s"] / baseline["starts_per_s"], 2)
        if accepted and ticks["started"] >= count
        else None
    )
    return Result(
        figures={"ticks": ticks, "idle_pass": idle, "baseline_single_starts": baseline},
        ratio=ratio,
        target=f"{count} due ticks started by one worker at >= {TARGET_RATIO} x the rate of "
        "single starts at concurrency 50; ratio: ticks/s over starts/s",
        met=None if ratio is None else ratio >= TARGET_RATIO,
        notes=notes,
    )

"""fairness: one user's backlog against another's few, fair dispatch next to first in, first out;
and what one dispatch costs with 1,000 and 100,000 executions waiting.

1. One worker of 8 slots, a model answering in 1 s. User A (the admin) submits 240 executions
   (quick: 80), a second later user B submits 4. B's wait: from B's first POST to B's last
   execution finished, minus the 1 s of its own run. Measured twice in the same run: with fair
   share (the default) and with ``AGENTRUN_FAIR_SHARE=false`` (first in, first out: every
   execution enqueued at once, as before fair share), each with an API and a worker of its own.
2. The dispatcher's step (``app.executions.dispatch.release_waiting``, as a worker runs it for
   its free slots) timed in this process against the bench database with 1,000 and with
   100,000 executions waiting, inserted directly by SQL over 100 users (half of them one
   user's), 8 running; each step rolled back so that the backlog stays the same.
"""

import asyncio
import statistics
import time
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.core.config import Settings
from app.executions.dispatch import release_waiting
from bench.context import BenchRun
from bench.driver import submit
from bench.scenarios import Result
from bench.stack import REDIS_URL

SLOTS = 8
MODEL_SECONDS = 1.0
B_EXECUTIONS = 4
TIME_LIMIT = 300.0
BACKLOGS = (1_000, 100_000)
DISPATCH_STEPS = 200
WAITING_USERS = 100

TIMES = """
SELECT min(started_at) AS first_submitted, max(finished_at) AS last_finished,
       count(*) FILTER (WHERE status = 'finished') AS finished
FROM agentic_executions WHERE id = ANY($1::int[])
"""

# The backlog of the dispatch measure: WAITING_USERS users, half the rows the first one's.
MAKE_USERS = """
INSERT INTO users (username, is_admin, is_active, created_at, fair_share_weight)
SELECT 'fairness-' || n, false, true, now(), 1 FROM generate_series(1, $1) AS n
RETURNING id
"""
DROP_BACKLOG = """
WITH gone AS (
    DELETE FROM agentic_executions WHERE user_id = ANY($1::int[]) RETURNING conversation_id
)
DELETE FROM conversations WHERE id IN (SELECT conversation_id FROM gone)
"""
MAKE_BACKLOG = """
WITH conversations AS (
    INSERT INTO conversations (agent_id, user_id, locked, created_at)
    SELECT $1, ($2::int[])[CASE WHEN n % 2 = 0 THEN 1 ELSE 1 + n % array_length($2, 1) END],
           true, now()
    FROM generate_series(1, $3) AS n
    RETURNING id, user_id
)
INSERT INTO agentic_executions (agent_id, user_id, dataset_id, execution_key, conversation_id,
    status, input, attempts, started_at, priority, dispatched_at)
SELECT $1, user_id, $4, 'structured-task', id,
       CASE WHEN row_number() OVER () <= $5 THEN 'in_progress' ELSE 'pending' END,
       '{"instructions": "Waiting."}', 0, now() - interval '1 hour' + id * interval '1 ms',
       'interactive',
       CASE WHEN row_number() OVER () <= $5 THEN now() END
FROM conversations
"""


async def _one_mode(bench: BenchRun, fair: bool, backlog: int) -> dict[str, Any]:
    flag = "true" if fair else "false"
    env = bench.stack.env(AGENTRUN_FAIR_SHARE=flag)
    api = await bench.stack.start_uvicorn(
        f"api-fair-{flag}", "app.main:app", env=env, ready_path="/healthz"
    )
    [worker] = await bench.stack.start_workers(
        1, REDIS_URL, AGENTRUN_FAIR_SHARE=flag, AGENTRUN_WORKER_CONCURRENCY=str(SLOTS)
    )
    try:
        async with (
            bench.lanes(bench.admin_token, 20, base_url=api.url) as a_lanes,
            bench.lanes(bench.user_token, B_EXECUTIONS, base_url=api.url) as b_lanes,
        ):
            a_posts, _ = await a_lanes.run(
                backlog, lambda client: submit(client, bench.agent_id), time_limit=120
            )
            await asyncio.sleep(1.0)
            b_posted = time.time()
            b_posts, _ = await b_lanes.run(
                B_EXECUTIONS, lambda client: submit(client, bench.agent_id), time_limit=60
            )
        a_ids = [p.body["id"] for p in a_posts if p.status_code == 202]
        b_ids = [p.body["id"] for p in b_posts if p.status_code == 202]
        await bench.wait_terminal(a_ids + b_ids, TIME_LIMIT)
        a_row = await bench.pool.fetchrow(TIMES, a_ids)
        b_row = await bench.pool.fetchrow(TIMES, b_ids)
    finally:
        bench.stack.stop(worker)
        bench.stack.stop(api)
        await bench.discard_open_executions()
    b_done = b_row["last_finished"].timestamp() - b_posted if b_row["last_finished"] else None
    a_done = (
        (a_row["last_finished"] - a_row["first_submitted"]).total_seconds()
        if a_row["last_finished"]
        else None
    )
    return {
        "a_submitted": len(a_ids),
        "a_finished": a_row["finished"],
        "a_first_submit_to_last_finished_s": round(a_done, 2) if a_done else None,
        "b_submitted": len(b_ids),
        "b_finished": b_row["finished"],
        "b_submit_to_last_finished_s": round(b_done, 2) if b_done else None,
        "b_wait_s": round(b_done - MODEL_SECONDS, 2) if b_done else None,
    }


async def _dispatch_cost(
    bench: BenchRun, waiting: int, users: list[int], running: int
) -> dict[str, Any]:
    """The step's time with ``waiting`` waiting (and ``running``), inserted and deleted again
    without triggers: the event log's rows and the foreign keys' checks, a few minutes at
    100,000, say nothing of the dispatch."""
    async with bench.pool.acquire() as connection:
        await connection.execute("SET session_replication_role = replica")
        try:
            await connection.execute(
                MAKE_BACKLOG, bench.agent_id, users, waiting + running, bench.dataset_id, running
            )
        finally:
            await connection.execute("RESET session_replication_role")
    await bench.pool.execute("ANALYZE agentic_executions")
    settings = Settings(database_url=bench.stack.database_url)
    engine = create_async_engine(settings.database_url, pool_size=1)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    timings: dict[int, list[float]] = {1: [], SLOTS: []}
    try:
        for slots in timings:
            for _ in range(DISPATCH_STEPS):
                async with sessionmaker() as session:
                    started = time.perf_counter()
                    released = await release_waiting(session, settings, slots)
                    timings[slots].append(time.perf_counter() - started)
                    # The backlog stays as it was for the next step.
                    await session.rollback()
                assert len(released) == slots, released
    finally:
        await engine.dispose()
        async with bench.pool.acquire() as connection:
            await connection.execute("SET session_replication_role = replica")
            try:
                await connection.execute(DROP_BACKLOG, users)
            finally:
                await connection.execute("RESET session_replication_role")
    figures: dict[str, Any] = {"waiting": waiting, "waiting_users": len(users)}
    for slots, samples in timings.items():
        median = statistics.median(samples)
        figures[f"step_{slots}_slots_ms_p50"] = round(median * 1000, 2)
        figures[f"step_{slots}_slots_ms_p90"] = round(
            sorted(samples)[int(len(samples) * 0.9)] * 1000, 2
        )
        figures[f"per_execution_{slots}_slots_ms"] = round(median * 1000 / slots, 2)
    return figures


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    backlog = 240 if bench.sizes.latency_rounds >= 200 else 80
    await bench.model.configure(latency=MODEL_SECONDS, reset=True)
    fair = await _one_mode(bench, True, backlog)
    fifo = await _one_mode(bench, False, backlog)
    await bench.model.configure(latency=0, reset=True)
    users = [row["id"] for row in await bench.pool.fetch(MAKE_USERS, WAITING_USERS)]
    costs = [await _dispatch_cost(bench, waiting, users, SLOTS) for waiting in BACKLOGS]
    await bench.pool.execute("DELETE FROM users WHERE id = ANY($1::int[])", users)

    ratio = (
        round(fair["b_wait_s"] / fifo["b_wait_s"], 3)
        if fair["b_wait_s"] is not None and fifo["b_wait_s"]
        else None
    )
    small, large = costs
    growth = round(
        large["per_execution_1_slots_ms"] / max(small["per_execution_1_slots_ms"], 1e-6), 2
    )
    figures = {
        "slots": SLOTS,
        "model_seconds": MODEL_SECONDS,
        "a_backlog": backlog,
        "b_executions": B_EXECUTIONS,
        "fair": fair,
        "fifo": fifo,
        "b_wait_fair_over_fifo": ratio,
        "dispatch": {str(cost["waiting"]): cost for cost in costs},
        "dispatch_cost_growth_100k_over_1k": growth,
    }
    met = (
        fair["b_wait_s"] is not None
        and fair["b_wait_s"] <= 2 * MODEL_SECONDS
        and fair["a_finished"] == backlog
        and growth <= 2.0
    )
    return Result(
        figures=figures,
        ratio=ratio,
        target="B waits <= 2 slot-times under fair share; A all finish; dispatch cost at 100k "
        "<= 2x at 1k",
        met=met,
        notes=[
            f"B's wait: {fair['b_wait_s']} s fair, {fifo['b_wait_s']} s first in, first out",
            f"dispatch step, 1 slot: {small['step_1_slots_ms_p50']} ms at {small['waiting']} "
            f"waiting, {large['step_1_slots_ms_p50']} ms at {large['waiting']}",
        ],
    )

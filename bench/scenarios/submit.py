"""3. submit: POST throughput and latency of the API alone (no worker runs meanwhile).

M POSTs at concurrency C to ``POST /api/agents/{id}/agentic-executions/``, against the same to
a bare FastAPI endpoint (bench/bare_app.py: one INSERT, one arq enqueue) in the same kind of
uvicorn process. Ratio: our throughput / bare throughput. Target >= 0.7.
"""

import secrets
from typing import Any

import httpx

from bench.context import BenchRun
from bench.driver import (
    EXECUTION_BODY,
    Timed,
    latency_ms,
    status_codes,
    submit,
    timed_request,
)
from bench.scenarios import Result

TARGET = 0.7
WARM_UP_POSTS = 100
TIME_LIMIT = 180.0


async def run(bench: BenchRun) -> Result:
    assert bench.api is not None
    count, concurrency = bench.sizes.submit_posts, bench.sizes.submit_concurrency
    async with bench.lanes(bench.admin_token, concurrency) as lanes:
        await lanes.run(WARM_UP_POSTS, lambda client: submit(client, bench.agent_id), time_limit=60)
        bench.profiler.start("submit-api", bench.api.pid)
        meter = bench.cpu_meter()
        posts, wall = await lanes.run(
            count, lambda client: submit(client, bench.agent_id), time_limit=TIME_LIMIT
        )
        cpu = meter.stop()
        profiles = bench.profiler.stop()
    ours = _figures(posts, wall, cpu, "api")
    discarded = await bench.discard_open_executions()

    bare_queue = f"{bench.stack.queue_name}:bare-{secrets.token_hex(2)}"
    bare_process = await bench.stack.start_bare_api(bare_queue)
    try:
        path = f"/bare/agents/{bench.agent_id}/agentic-executions/"
        async with bench.lanes(None, concurrency, bare_process.url) as lanes:

            async def bare_post(client: httpx.AsyncClient) -> Timed:
                return await timed_request(client, "POST", path, json=EXECUTION_BODY)

            await lanes.run(WARM_UP_POSTS, bare_post, time_limit=60)
            meter = bench.cpu_meter(bare=bare_process)
            bare_posts, bare_wall = await lanes.run(count, bare_post, time_limit=TIME_LIMIT)
            bare_cpu = meter.stop()
    finally:
        bench.stack.stop(bare_process)
        await bench.pool.execute("DROP TABLE IF EXISTS bench_bare_executions")
        await bench.stack.flush_redis()
    bare = _figures(bare_posts, bare_wall, bare_cpu, "bare")
    ratio = ours["throughput_per_s"] / bare["throughput_per_s"] if bare["accepted"] else None
    cpu_ratio = bare["server_cpu_ms_per_post"] / ours["server_cpu_ms_per_post"]
    notes = [f"{discarded} submitted executions were failed as bench_discarded afterwards"]
    return Result(
        figures={
            "concurrency": concurrency,
            "api": ours,
            "bare": bare,
            # What the throughput ratio would be if the API process alone set the pace.
            "server_cpu_ratio": round(cpu_ratio, 2),
        },
        ratio=round(ratio, 2) if ratio else None,
        target=f">= {TARGET}",
        met=None if ratio is None else ratio >= TARGET,
        notes=notes,
        profiles=profiles,
    )


def _figures(posts: list[Timed], wall: float, cpu: dict[str, float], server: str) -> dict[str, Any]:
    accepted = [p for p in posts if p.status_code == 202]
    return {
        "server_cpu_ms_per_post": round(1000 * cpu[server] / max(1, len(posts)), 2),
        "cpu_s": cpu,
        "posts": len(posts),
        "accepted": len(accepted),
        "status_codes": status_codes(posts),
        "wall_s": round(wall, 3),
        "throughput_per_s": round(len(accepted) / wall, 1),
        "latency": latency_ms([p.seconds for p in accepted]),
    }

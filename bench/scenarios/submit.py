"""3. submit: POST throughput and latency of the API alone (no worker runs meanwhile).

M POSTs at concurrency C to ``POST /api/agents/{id}/agentic-executions/``, against the same to
a bare endpoint (bench/bare.py: one INSERT, one arq enqueue) in the same process, as the issue
defines the baseline: both are served by one API process started from bench/bare_app.py (the
real application with the bare route mounted on it, behind the same middleware and server).
The two take turns (ROUNDS turns each, the order swapped every turn), so that a change of the
machine's load weighs on both alike. Ratio: our throughput / the bare endpoint's. Target >= 0.7.

Also measured, outside the target:
- ``bare_rows_in_process``: in the same turns, the bare endpoint writing the rows a real
  execution has (its conversation and the execution, in the service's tables with their
  indexes; ``bench.bare.ROWS_PATH``). Against it, ``rows_throughput_ratio`` is what the
  service's code costs apart from what its schema does.
- ``floor``: the bare endpoint alone in its own uvicorn process with no middleware
  (bench/floor_app.py), as the least any submit could cost here.
"""

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.bare import PATH as BARE_PATH
from bench.bare import ROWS_PATH as BARE_ROWS_PATH
from bench.bare import TABLE as BARE_TABLE
from bench.context import BenchRun
from bench.driver import (
    EXECUTION_BODY,
    Lanes,
    Timed,
    latency_ms,
    status_codes,
    submit,
    timed_request,
)
from bench.scenarios import Result
from bench.stack import Process

TARGET = 0.7
WARM_UP_POSTS = 100
# Ours and the bare endpoints take turns, each posting count / ROUNDS a turn.
ROUNDS = 4
TIME_LIMIT = 180.0

Post = Callable[[httpx.AsyncClient], Awaitable[Timed]]


async def run(bench: BenchRun) -> Result:
    count, concurrency = bench.sizes.submit_posts, bench.sizes.submit_concurrency
    bare_queue = f"{bench.stack.queue_name}:bare-{secrets.token_hex(2)}"

    async def ours_post(client: httpx.AsyncClient) -> Timed:
        return await submit(client, bench.agent_id)

    def posting_to(path: str) -> Post:
        url = path.format(agent_id=bench.agent_id)

        async def post(client: httpx.AsyncClient) -> Timed:
            return await timed_request(client, "POST", url, json=EXECUTION_BODY)

        return post

    bare_post = posting_to(BARE_PATH)

    async def measure(
        process: Process, token: str | None, post: Post, server: str
    ) -> dict[str, Any]:
        async with Lanes(process.url, token, concurrency) as lanes:
            await lanes.run(WARM_UP_POSTS, post, time_limit=60)
            # As "api", the process replaces the run's own API in the meter.
            meter = bench.cpu_meter(**{server: process})
            posts, wall = await lanes.run(count, post, time_limit=TIME_LIMIT)
            return _figures(posts, wall, meter.stop(), server)

    async def alternate(api: Process) -> dict[str, dict[str, Any]]:
        """Ours and the bare endpoints in turns, the order rotated every turn, so that a change
        of the machine's load during the scenario weighs on all alike."""
        posts_of: dict[str, Post] = {
            "ours": ours_post,
            "bare": bare_post,
            "bare_rows": posting_to(BARE_ROWS_PATH),
        }
        sides = {
            side: Lanes(api.url, bench.admin_token if side == "ours" else None, concurrency)
            for side in posts_of
        }
        runs: dict[str, list[tuple[list[Timed], float, dict[str, float]]]] = {
            side: [] for side in sides
        }
        async with contextlib.AsyncExitStack() as lanes_open:
            for side, lanes in sides.items():
                await lanes_open.enter_async_context(lanes)
                await lanes.run(WARM_UP_POSTS, posts_of[side], time_limit=60)
            names = list(sides)
            for turn in range(ROUNDS):
                for side in names[turn % len(names) :] + names[: turn % len(names)]:
                    if side == "ours" and turn == 0:
                        bench.profiler.start("submit-api", api.pid)
                    meter = bench.cpu_meter(api=api)
                    posts, wall = await sides[side].run(
                        count // ROUNDS, posts_of[side], time_limit=TIME_LIMIT / ROUNDS
                    )
                    runs[side].append((posts, wall, meter.stop()))
        return {side: _combined(runs[side], "api") for side in sides}

    try:
        api = await bench.stack.start_api_with_bare(bare_queue)
        try:
            measured = await alternate(api)
            ours, bare, bare_rows = measured["ours"], measured["bare"], measured["bare_rows"]
            profiles = bench.profiler.stop()
            discarded = await bench.discard_open_executions()
        finally:
            bench.stack.stop(api)
        await bench.stack.flush_redis()
        floor_process = await bench.stack.start_floor_api(bare_queue)
        try:
            floor = await measure(floor_process, None, bare_post, "floor")
        finally:
            bench.stack.stop(floor_process)
    finally:
        await bench.pool.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        await bench.stack.flush_redis()

    ratio = _ratio(ours["throughput_per_s"], bare["throughput_per_s"]) if bare["accepted"] else None
    notes = [
        "baseline: the bare endpoint in the API's own process, behind the same middleware "
        "(bench/bare_app.py); for reference only: bare_rows, the same endpoint writing the "
        "rows of a real execution (its conversation and the execution, in the service's "
        "tables), and floor, the bare endpoint alone in a plain uvicorn app with no "
        "middleware (bench/floor_app.py)",
        f"{discarded} submitted executions were failed as bench_discarded afterwards",
    ]
    labelled = (
        ("api", ours),
        ("bare_in_process", bare),
        ("bare_rows_in_process", bare_rows),
        ("floor", floor),
    )
    for label, figures in labelled:
        if figures["accepted"] != figures["posts"]:
            notes.append(f"{label}: answered other than 202: {figures['status_codes']}")
    return Result(
        figures={
            "concurrency": concurrency,
            "api": ours,
            "bare_in_process": bare,
            "bare_rows_in_process": bare_rows,
            "floor": floor,
            # What the throughput ratio would be if the API process alone set the pace.
            "server_cpu_ratio": _ratio(
                bare["server_cpu_ms_per_post"], ours["server_cpu_ms_per_post"]
            ),
            # Ours against the bare endpoint writing the same rows: the cost of our code alone.
            "rows_throughput_ratio": _ratio(
                ours["throughput_per_s"], bare_rows["throughput_per_s"]
            ),
            # The same two against the floor: what the middleware and the app's stack cost too.
            "floor_throughput_ratio": _ratio(ours["throughput_per_s"], floor["throughput_per_s"]),
            "floor_server_cpu_ratio": _ratio(
                floor["server_cpu_ms_per_post"], ours["server_cpu_ms_per_post"]
            ),
        },
        ratio=ratio,
        target=f"reported (was >= {TARGET}; replaced by pydantic_ai)",
        # Issue #17 replaced this target (it measured the machine more than the service).
        met=None,
        notes=notes,
        profiles=profiles,
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator else None


def _combined(
    runs: list[tuple[list[Timed], float, dict[str, float]]], server: str
) -> dict[str, Any]:
    """The figures of several runs of one side, as if they had been one."""
    cpu: dict[str, float] = {}
    for _, _, spent in runs:
        for name, seconds in spent.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    return _figures(
        [post for posts, _, _ in runs for post in posts],
        sum(wall for _, wall, _ in runs),
        cpu,
        server,
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

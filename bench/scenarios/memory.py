"""5. memory: worker RSS per execution in flight.

A fresh worker, warmed up, is measured idle; then K executions are submitted while the model
server holds every call, so that all K end up waiting on the model at once however long the
submitting takes; the worker's RSS is sampled then, and the calls released.
(rss_busy - rss_idle) / in flight, in KiB. Target <= 200 KiB.
"""

import asyncio
import statistics
import time

from bench.context import BenchRun
from bench.cpu import process_seconds
from bench.driver import status_codes, submit
from bench.scenarios import Result
from bench.stack import rss_bytes

TARGET_KIB = 200
WARM_UP_EXECUTIONS = 20
SUBMIT_CONCURRENCY = 100
SAMPLE_SECONDS = 0.1
SAMPLES = 20
# How long to wait for every execution to reach the model, and then for all to end.
TIME_LIMIT = 120.0


async def _rss(pid: int) -> list[int]:
    samples = []
    for _ in range(SAMPLES):
        samples.append(rss_bytes(pid))
        await asyncio.sleep(SAMPLE_SECONDS)
    return samples


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    count = bench.sizes.memory_executions
    await bench.model.configure(latency=0, hold=False, reset=True)
    async with bench.worker() as worker:
        await bench.warm_up(WARM_UP_EXECUTIONS, concurrency=10)
        await asyncio.sleep(1)
        idle_cpu = process_seconds(worker.pid)
        idle_started = time.perf_counter()
        rss_idle = int(statistics.median(await _rss(worker.pid)))
        # An idle worker still polls the queue (every AGENTRUN_WORKER_POLL_DELAY_SECONDS).
        idle_cpu_share = (process_seconds(worker.pid) - idle_cpu) / (
            time.perf_counter() - idle_started
        )
        await bench.model.configure(hold=True, reset=True)
        try:
            async with bench.lanes(bench.admin_token, SUBMIT_CONCURRENCY) as lanes:
                posts, submit_wall = await lanes.run(
                    count, lambda client: submit(client, bench.agent_id), time_limit=TIME_LIMIT / 2
                )
            ids = [p.body["id"] for p in posts if p.status_code == 202]
            deadline = time.perf_counter() + TIME_LIMIT
            while True:
                stats = await bench.model.stats()
                if stats["in_flight"] >= len(ids) or time.perf_counter() > deadline:
                    break
                await asyncio.sleep(SAMPLE_SECONDS)
            waited = TIME_LIMIT - (deadline - time.perf_counter())
            busy = await _rss(worker.pid)
            in_flight = (await bench.model.stats())["in_flight"]
        finally:
            await bench.model.configure(hold=False)
        terminal, failed, _ = await bench.wait_terminal(ids, TIME_LIMIT)
        await asyncio.sleep(1)
        rss_after = rss_bytes(worker.pid)

    rss_busy = int(statistics.median(busy))
    per_execution_kib = (rss_busy - rss_idle) / 1024 / in_flight if in_flight else None
    figures = {
        "executions": count,
        "accepted": len(ids),
        "post_status_codes": status_codes(posts),
        "submit_wall_s": round(submit_wall, 2),
        "all_in_flight_after_s": round(waited, 2),
        "in_flight_at_sample": in_flight,
        "idle_worker_cpu_pct": round(100 * idle_cpu_share, 1),
        "rss_idle_mib": round(rss_idle / 2**20, 1),
        "rss_busy_mib": round(rss_busy / 2**20, 1),
        "rss_after_mib": round(rss_after / 2**20, 1),
        "per_execution_kib": round(per_execution_kib, 1) if per_execution_kib else None,
        "terminal": terminal,
        "failed": failed,
    }
    notes = []
    if in_flight < count:
        notes.append(
            f"only {in_flight} of {count} executions were in flight at once; the figure is per "
            "execution actually in flight"
        )
    return Result(
        figures=figures,
        ratio=None,
        target=f"<= {TARGET_KIB} KiB per execution",
        met=None if per_execution_kib is None else per_execution_kib <= TARGET_KIB,
        notes=notes,
    )

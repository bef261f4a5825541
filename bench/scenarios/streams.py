"""6. streams: one API process holding N open event streams (GET …/events/).

N executions are submitted with no worker running (they stay pending) and each is followed by
one stream, opened 50 at a time. Measured: the API's RSS before and with the N streams open
(per stream, KiB), its CPU while they sit idle for IDLE_SECONDS (keep-alive comments only),
then a worker is started, the N runs end, and every stream must have received its whole log
(ids 1..n, nothing doubled or skipped, the terminal status last) and ended: the API's CPU per
stream and per event delivered during that phase.
"""

import asyncio
import statistics
import time

import httpx

from bench.context import BenchRun
from bench.cpu import per_unit_ms
from bench.driver import http_client, status_codes, submit
from bench.scenarios import Result
from bench.stack import rss_bytes

TARGET_STREAMS = 1000
IDLE_SECONDS = 20.0
OPEN_CONCURRENCY = 50
STREAMS_PER_CLIENT = 100
TIME_LIMIT = 300.0
EVENT_LOG = """
SELECT execution_id, max(sequence) AS events FROM execution_events
WHERE execution_id = ANY($1::int[]) GROUP BY execution_id
"""


class Follower:
    """One stream: the event ids and types it received."""

    def __init__(self, execution_id: int) -> None:
        self.execution_id = execution_id
        self.ids: list[int] = []
        self.last_status = ""
        self.opened = asyncio.Event()
        self.error = ""

    async def follow(self, client: httpx.AsyncClient) -> None:
        url = f"/api/agentic-executions/{self.execution_id}/events/"
        try:
            async with client.stream("GET", url, timeout=httpx.Timeout(60)) as response:
                if response.status_code != 200:
                    self.error = f"HTTP {response.status_code}"
                    return
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        self.ids.append(int(line[4:]))
                        self.opened.set()
                    elif line.startswith("data: ") and '"status":"' in line[:200]:
                        self.last_status = line.split('"status":"', 1)[1].split('"', 1)[0]
        except httpx.HTTPError as exc:
            self.error = type(exc).__name__
        finally:
            self.opened.set()


async def _rss(pid: int, samples: int = 10) -> int:
    values = []
    for _ in range(samples):
        values.append(rss_bytes(pid))
        await asyncio.sleep(0.1)
    return int(statistics.median(values))


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    assert bench.api is not None
    count = bench.sizes.stream_count
    api = bench.api
    await bench.model.configure(latency=0, hold=False, reset=True)
    async with bench.lanes(bench.admin_token, OPEN_CONCURRENCY) as lanes:
        posts, _ = await lanes.run(
            count, lambda client: submit(client, bench.agent_id), time_limit=TIME_LIMIT / 2
        )
    ids = [p.body["id"] for p in posts if p.status_code == 202]
    await asyncio.sleep(1)
    rss_before = await _rss(api.pid)

    clients = [
        http_client(api.url, bench.admin_token, connections=STREAMS_PER_CLIENT)
        for _ in range(-(-len(ids) // STREAMS_PER_CLIENT))
    ]
    followers = [Follower(execution_id) for execution_id in ids]
    opening = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(number: int, follower: Follower) -> None:
        async with opening:
            task = asyncio.create_task(follower.follow(clients[number // STREAMS_PER_CLIENT]))
            await follower.opened.wait()
        await task

    started = time.perf_counter()
    tasks = [asyncio.create_task(open_one(n, f)) for n, f in enumerate(followers)]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(f.opened.wait() for f in followers)), TIME_LIMIT / 2
        )
        open_seconds = time.perf_counter() - started
        open_streams = sum(1 for f in followers if f.ids and not f.error)
        rss_open = await _rss(api.pid)

        idle_meter = bench.cpu_meter()
        await asyncio.sleep(IDLE_SECONDS)
        idle = idle_meter.stop()

        run_meter = bench.cpu_meter()
        async with bench.worker():
            await asyncio.wait(tasks, timeout=TIME_LIMIT)
        ran = run_meter.stop()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(client.aclose() for client in clients))

    logged = {row["execution_id"]: row["events"] for row in await bench.pool.fetch(EVENT_LOG, ids)}
    complete = sum(
        1
        for f in followers
        if f.ids == list(range(1, logged.get(f.execution_id, 0) + 1))
        and f.last_status in ("finished", "failed")
    )
    events = sum(len(f.ids) for f in followers)
    errors: dict[str, int] = {}
    for f in followers:
        if f.error:
            errors[f.error] = errors.get(f.error, 0) + 1
    per_stream_kib = (rss_open - rss_before) / 1024 / open_streams if open_streams else None
    figures = {
        "streams": count,
        "accepted": len(ids),
        "post_status_codes": status_codes(posts),
        "open_streams": open_streams,
        "open_all_s": round(open_seconds, 2),
        "api_rss_before_mib": round(rss_before / 2**20, 1),
        "api_rss_open_mib": round(rss_open / 2**20, 1),
        "api_rss_per_stream_kib": None if per_stream_kib is None else round(per_stream_kib, 1),
        "idle_seconds": IDLE_SECONDS,
        "idle_api_cpu_pct": round(100 * idle["api"] / IDLE_SECONDS, 2),
        "idle_api_cpu_us_per_stream_second": round(
            1e6 * idle["api"] / IDLE_SECONDS / max(open_streams, 1), 2
        ),
        "idle_postgres_cpu_s": idle["postgres"],
        "run_cpu_s": ran,
        "run_cpu_ms_per_stream": per_unit_ms(ran, len(ids)),
        "events_delivered": events,
        "api_cpu_ms_per_event": round(1000 * ran["api"] / events, 3) if events else None,
        "streams_complete_in_order": complete,
        "streams_ended": sum(1 for t in tasks if t.done() and not t.cancelled()),
        "stream_errors": errors,
    }
    return Result(
        figures=figures,
        ratio=None,
        target=f">= {TARGET_STREAMS} open streams, each complete and in order",
        met=open_streams >= min(count, TARGET_STREAMS) and complete == len(ids),
    )

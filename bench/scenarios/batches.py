"""batches: a batch of N items (10,000 at full size) accepted, and its results exported.

- ``accept``: ``POST /api/agents/{id}/agentic-execution-batches/`` with N items as JSON, and
  again as a multipart JSONL file, timed from the first byte sent to the 202 (every item
  validated, the items and their conversations inserted, the commit, the enqueue). Target:
  <= 5 s for 10,000 items. The API's RSS is sampled every 20 ms meanwhile: its peak, against
  its RSS before.
- baseline, in the same run: BASELINE_POSTS single starts at concurrency 50 (the way a client
  without batches sends them); the ratio is the batch's items per second over theirs.
- ``export``: ``GET .../results/`` of the batch, streamed: lines per second and the API's
  peak RSS while it streams.
- ``cancel``: ``POST .../cancel/`` of the batch, its N items still pending.

No worker runs: the items stay pending and are failed as ``bench_discarded`` afterwards.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bench.context import BenchRun
from bench.driver import EXECUTION_BODY, status_codes, submit
from bench.scenarios import Result
from bench.stack import rss_bytes

TARGET_SECONDS = 5.0
BASELINE_POSTS = 1000
BASELINE_CONCURRENCY = 50
SAMPLE_SECONDS = 0.02
TIME_LIMIT = 120.0

T = TypeVar("T")


async def _peak_rss(pid: int, work: Awaitable[T]) -> tuple[T, int, int]:
    """``work``'s answer, and the process's RSS before it and at its peak meanwhile."""
    before = rss_bytes(pid)
    peak = before
    task = asyncio.ensure_future(work)
    while not task.done():
        peak = max(peak, rss_bytes(pid))
        await asyncio.sleep(SAMPLE_SECONDS)
    return await task, before, peak


def _items(count: int) -> list[dict[str, Any]]:
    base = EXECUTION_BODY["input"]
    return [
        {"input": {**base, "instructions": f"{base['instructions']} (item {index})"}}
        for index in range(count)
    ]


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


async def run(bench: BenchRun) -> Result:
    assert bench.api is not None
    count = bench.sizes.batch_items
    items = _items(count)
    url = f"/api/agents/{bench.agent_id}/agentic-execution-batches/"
    json_body = json.dumps({"execution_key": EXECUTION_BODY["execution_key"], "items": items})
    jsonl = "".join(json.dumps(item) + "\n" for item in items).encode()
    figures: dict[str, Any] = {"items": count, "json_body_mib": _mib(len(json_body))}
    notes: list[str] = []
    async with bench.client(bench.admin_token) as client:
        client.timeout = TIME_LIMIT

        async def timed(send: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
            started = time.perf_counter()
            response = await send()
            return time.perf_counter() - started, response

        # Warm: the route's first request compiles its statements.
        await client.post(
            url, json={"execution_key": EXECUTION_BODY["execution_key"], "items": items[:10]}
        )
        for label, send in (
            (
                "json",
                lambda: client.post(
                    url, content=json_body, headers={"Content-Type": "application/json"}
                ),
            ),
            (
                "jsonl",
                lambda: client.post(
                    url,
                    data={"execution_key": EXECUTION_BODY["execution_key"]},
                    files={"items": ("items.jsonl", jsonl, "application/x-ndjson")},
                ),
            ),
        ):
            (seconds, response), before, peak = await _peak_rss(bench.api.pid, timed(send))
            if response.status_code != 202:
                notes.append(f"{label}: {response.status_code} {response.text[:300]}")
            figures[f"accept_{label}"] = {
                "seconds": round(seconds, 2),
                "items_per_s": round(count / seconds),
                "status": response.status_code,
                "api_rss_before_mib": _mib(before),
                "api_rss_peak_mib": _mib(peak),
            }
            batch_id = response.json().get("id") if response.status_code == 202 else None
        if batch_id is not None:

            async def export() -> int:
                lines = 0
                async with client.stream(
                    "GET", f"/api/agentic-execution-batches/{batch_id}/results/"
                ) as streamed:
                    async for _ in streamed.aiter_lines():
                        lines += 1
                return lines

            (seconds, lines), before, peak = await _peak_rss(bench.api.pid, timed(export))
            figures["export"] = {
                "lines": lines,
                "seconds": round(seconds, 2),
                "lines_per_s": round(lines / seconds),
                "api_rss_before_mib": _mib(before),
                "api_rss_peak_mib": _mib(peak),
            }
            # Every item still pending (no worker runs): one UPDATE fails them all.
            seconds, cancelled = await timed(
                lambda: client.post(f"/api/agentic-execution-batches/{batch_id}/cancel/")
            )
            figures["cancel"] = {
                "seconds": round(seconds, 2),
                "status": cancelled.status_code,
                "failed": cancelled.json().get("counts", {}).get("failed"),
            }
    async with bench.lanes(bench.admin_token, BASELINE_CONCURRENCY) as lanes:
        posts, wall = await lanes.run(
            BASELINE_POSTS, lambda c: submit(c, bench.agent_id), time_limit=TIME_LIMIT
        )
    accepted = sum(1 for post in posts if post.status_code == 202)
    figures["baseline_single_starts"] = {
        "posts": len(posts),
        "accepted": accepted,
        "status_codes": status_codes(posts),
        "items_per_s": round(accepted / wall),
    }
    discarded = await bench.discard_open_executions()
    notes.append(f"{discarded} submitted executions were failed as bench_discarded afterwards")
    accept = figures["accept_json"]
    ratio = (
        round(accept["items_per_s"] / figures["baseline_single_starts"]["items_per_s"], 1)
        if accepted and accept["status"] == 202
        else None
    )
    return Result(
        figures=figures,
        ratio=ratio,
        target=f"{count} items accepted in <= {TARGET_SECONDS} s (JSON and JSONL); ratio: "
        "items/s of a batch over single starts at concurrency 50",
        met=max(figures["accept_json"]["seconds"], figures["accept_jsonl"]["seconds"])
        <= TARGET_SECONDS,
        notes=notes,
    )

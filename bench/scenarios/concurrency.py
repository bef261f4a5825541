"""2. concurrency: many executions waiting on a slow model, one worker process.

K executions submitted at once (model latency 1 s); time from the first submit until all are
terminal (seen by polling PostgreSQL), against the ideal: model calls per execution x latency.
Target ratio <= 1.2.

The last execution cannot end before its POST is answered plus the ideal, so the submit phase
bounds the ratio from below whatever the worker does: ``submit_bound_ratio``.
"""

import time
from datetime import datetime

from bench.context import BenchRun
from bench.cpu import per_unit_ms
from bench.driver import latency_ms, status_codes, submit
from bench.scenarios import Result

TARGET = 1.2
# POSTs in flight at once while submitting; the API's own pool is 20 connections.
SUBMIT_CONCURRENCY = 100
WARM_UP_EXECUTIONS = 5
TIME_LIMIT = 180.0

TIMINGS = """
SELECT status, failure_code, started_at, finished_at
FROM agentic_executions WHERE id = ANY($1::int[])
"""


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    assert bench.api is not None
    count, latency = bench.sizes.concurrency_executions, bench.sizes.concurrency_latency
    await bench.model.configure(latency=0, reset=True)
    async with bench.worker() as worker:
        calls_per_execution = max(1, round(await bench.warm_up(WARM_UP_EXECUTIONS)))
        await bench.model.configure(latency=latency, reset=True)
        calls_before = await bench.model_calls()
        bench.profiler.start("concurrency-api", bench.api.pid)
        bench.profiler.start("concurrency-worker", worker.pid)
        async with bench.lanes(bench.admin_token, SUBMIT_CONCURRENCY) as lanes:
            meter = bench.cpu_meter(worker=worker)
            first_submit_wall = time.time()
            started = time.perf_counter()
            posts, _ = await lanes.run(
                count, lambda client: submit(client, bench.agent_id), time_limit=TIME_LIMIT / 2
            )
            submitted = time.perf_counter()
        ids = [p.body["id"] for p in posts if p.status_code == 202]
        terminal, failed, seen = await bench.wait_terminal(ids, TIME_LIMIT)
        cpu = meter.stop()
        profiles = bench.profiler.stop()
        stats = await bench.model.stats()
        rows = await bench.pool.fetch(TIMINGS, ids)
    await bench.model.configure(latency=0, reset=True)

    ideal = calls_per_execution * latency
    total = seen - started
    # The ratio a worker costing nothing would reach after this submit phase.
    bound = (submitted - started + ideal) / ideal
    finished_at = [r["finished_at"] for r in rows if r["finished_at"] is not None]
    last_finished = max(finished_at).timestamp() - first_submit_wall if finished_at else None
    codes: dict[str, int] = {}
    for row in rows:
        if row["status"] == "failed":
            codes[row["failure_code"]] = codes.get(row["failure_code"], 0) + 1
    figures = {
        "executions": count,
        "accepted": len(ids),
        "post_status_codes": status_codes(posts),
        "terminal": terminal,
        "failed": failed,
        "failed_by_code": codes,
        "model_latency_s": latency,
        "model_calls_per_execution": round((stats["calls"] - calls_before) / max(1, len(ids)), 3),
        "ideal_s": ideal,
        "first_submit_to_all_terminal_s": round(total, 3),
        "first_submit_to_last_finished_at_s": round(last_finished, 3) if last_finished else None,
        "submit_phase_s": round(submitted - started, 3),
        # The worker's share: from the last POST answered until all are terminal. Against the
        # ideal it says how far the worker alone is from it, whatever the submit rate.
        "last_submit_to_all_terminal_s": round(seen - submitted, 3),
        "last_submit_to_all_terminal_ratio": round((seen - submitted) / ideal, 2),
        "submit_bound_ratio": round(bound, 2),
        "submit_rate_per_s": round(len(posts) / (submitted - started), 1),
        "post_latency": latency_ms([p.seconds for p in posts]),
        "model_peak_in_flight": stats["peak_in_flight"],
        "first_submit_to_first_model_call_s": _since(stats["first_call_at"], first_submit_wall),
        "first_submit_to_last_model_call_s": _since(stats["last_call_at"], first_submit_wall),
        "cpu_s": cpu,
        "cpu_ms_per_execution": per_unit_ms(cpu, len(ids)),
        "execution_duration": latency_ms(
            [_seconds(r["started_at"], r["finished_at"]) for r in rows if r["finished_at"]]
        ),
    }
    notes = []
    if bound > TARGET:
        notes.append(
            f"the submit phase alone ({submitted - started:.2f} s for {len(posts)} POSTs) puts "
            f"the ratio at {bound:.2f} or more, whatever the worker does"
        )
    if terminal < len(ids):
        notes.append(f"{len(ids) - terminal} executions were not terminal after {TIME_LIMIT:g}s")
    ratio = total / ideal
    return Result(
        figures=figures,
        ratio=round(ratio, 2),
        target=f"reported (was <= {TARGET}; replaced by latency, fleet)",
        # Issue #17 replaced this target (it measured the machine more than the service).
        met=None,
        notes=notes,
        profiles=profiles,
    )


def _since(moment: float | None, origin: float) -> float | None:
    return None if moment is None else round(moment - origin, 3)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()

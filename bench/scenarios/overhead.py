"""1. overhead: what an execution costs beyond its model calls.

N executions at concurrency C, model latency 0, each submitted and polled until terminal,
against the same number of model calls sent straight to the mock server at the same
concurrency (the body replayed is one the worker really sent). Ratio: time for N executions end
to end / time for N x calls-per-execution direct requests. Target <= 1.5.
"""

import httpx

from bench.context import BenchRun
from bench.cpu import per_unit_ms
from bench.driver import (
    Timed,
    latency_ms,
    status_codes,
    submit_and_wait,
    timed_request,
)
from bench.scenarios import Result, failure_codes

TARGET = 1.5
WARM_UP_EXECUTIONS = 10
WARM_UP_DIRECT = 50
EXECUTION_TIME_LIMIT = 60.0
LOOP_TIME_LIMIT = 300.0


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    assert bench.api is not None
    count, concurrency = bench.sizes.overhead_executions, bench.sizes.overhead_concurrency
    await bench.model.configure(latency=0, reset=True)
    async with bench.worker() as worker:
        warm_calls = await bench.warm_up(WARM_UP_EXECUTIONS)
        calls = max(1, round(warm_calls))
        body = await bench.model.last_request()

        async with bench.lanes(None, concurrency, bench.model_root) as model:

            async def direct(client: httpx.AsyncClient) -> Timed:
                return await timed_request(client, "POST", "/v1/chat/completions", json=body)

            await model.run(WARM_UP_DIRECT, direct, time_limit=60)
            meter = bench.cpu_meter()
            direct_results, direct_wall = await model.run(
                count * calls, direct, time_limit=LOOP_TIME_LIMIT
            )
            direct_cpu = meter.stop()

        bench.profiler.start("overhead-api", bench.api.pid)
        bench.profiler.start("overhead-worker", worker.pid)
        calls_before = await bench.model_calls()
        meter = bench.cpu_meter(worker=worker)
        async with bench.lanes(bench.admin_token, concurrency) as lanes:
            results, wall = await lanes.run(
                count,
                lambda client: submit_and_wait(client, bench.agent_id, EXECUTION_TIME_LIMIT),
                time_limit=LOOP_TIME_LIMIT,
            )
        cpu = meter.stop()
        profiles = bench.profiler.stop()
        calls_made = await bench.model_calls() - calls_before

    finished = [r for r in results if r.body.get("status") == "finished"]
    direct_ok = [r for r in direct_results if r.status_code == 200]
    ratio = wall / direct_wall if direct_wall and len(direct_ok) == len(direct_results) else None
    figures = {
        "executions": count,
        "concurrency": concurrency,
        "finished": len(finished),
        "failed_by_code": failure_codes([r.body for r in results]),
        "model_calls_per_execution": round(calls_made / max(1, len(results)), 3),
        "executions_wall_s": round(wall, 3),
        "executions_per_execution_ms": round(1000 * wall / max(1, len(results)), 2),
        "executions_per_s": round(len(results) / wall, 1),
        "execution_latency": latency_ms([r.seconds for r in finished]),
        "execution_server_duration": latency_ms(
            [r.body["duration_seconds"] for r in finished if r.body.get("duration_seconds")]
        ),
        "post_latency": latency_ms([r.extra["post_seconds"] for r in finished]),
        "polls_per_execution": round(sum(r.polls for r in finished) / max(1, len(finished)), 2),
        "cpu_s": cpu,
        "cpu_ms_per_execution": per_unit_ms(cpu, len(results)),
        "direct_requests": len(direct_results),
        "direct_status_codes": status_codes(direct_results),
        "direct_wall_s": round(direct_wall, 3),
        "direct_per_execution_ms": round(1000 * direct_wall / max(1, len(results)), 2),
        "direct_latency": latency_ms([r.seconds for r in direct_ok]),
        "direct_cpu_s": direct_cpu,
    }
    notes = []
    if len(finished) < len(results):
        notes.append(f"{len(results) - len(finished)} executions did not finish")
    if len(results) < count:
        notes.append(f"only {len(results)} of {count} executions ran within the time limit")
    return Result(
        figures=figures,
        ratio=round(ratio, 2) if ratio else None,
        target=f"<= {TARGET}",
        met=None if ratio is None else ratio <= TARGET,
        notes=notes,
        profiles=profiles,
    )

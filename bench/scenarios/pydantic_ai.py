"""pydantic_ai: the whole service's CPU per execution against pydantic-ai's own.

For structured-task and catalog-enrichment, N executions (200; quick 60), 20 at a time, model
latency 0, one model call each (catalog-enrichment on an empty list of SKUs, which its
validators accept as it is): submitted over HTTP, their end watched in PostgreSQL (no polling
of the API, which is a client's choice), and the CPU of the API, the worker, the scratch
database's PostgreSQL backends and Redis summed. Baseline, in the same run: the same agent
(bench/plain_agent.py: the definition's prompt, tools, output type and validators) with plain
``agent.run()`` in one process against the same mock server, the same number of runs at the
same concurrency. Ratio: service CPU per execution / the baseline's. Target <= 1.5.

``where_the_rest_goes``: each process's CPU per execution beside the baseline's; the worker's
share over the baseline is what the service adds around the agent run (claim, trace, outcome,
arq), the API's what accepting the execution costs, PostgreSQL's what the statements and the
event-log triggers cost.
"""

import asyncio
import json
import sys
from typing import Any

from bench.context import BenchRun
from bench.cpu import per_unit_ms
from bench.scenarios import Result
from bench.scenarios.latency import EndWatcher
from bench.stack import ROOT

TARGET = 1.5
CONCURRENCY = 20
SERVICE = ("api", "worker", "postgres", "redis")
INPUTS: dict[str, dict[str, Any]] = {
    "structured-task": {
        "instructions": "Summarise the benchmark run in one sentence.",
        "output_schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
        },
    },
    "catalog-enrichment": {"skus": [], "additional_instructions": None},
}


async def _agent_of_type(bench: BenchRun, agent_type: str) -> int:
    async with bench.client(bench.admin_token) as client:
        created = await client.post(
            "/api/agents/",
            json={
                "name": f"bench {agent_type}",
                "dataset_id": bench.dataset_id,
                "agent_type": agent_type,
                "model": {"name": "openai:mock", "base_url": bench.model_url},
            },
        )
        created.raise_for_status()
        return int(created.json()["id"])


async def _service(bench: BenchRun, agent_id: int, key: str, count: int) -> dict[str, Any]:
    body = {"execution_key": key, "input": INPUTS[key]}
    path = f"/api/agents/{agent_id}/agentic-executions/"

    async def one(client: Any, watcher: EndWatcher) -> str:
        posted = await client.post(path, json=body)
        if posted.status_code != 202:
            return f"http {posted.status_code}"
        try:
            async with asyncio.timeout(60):
                _, status = await watcher.ended(int(posted.json()["id"]))
        except TimeoutError:
            return "timeout"
        return str(status)

    async with bench.lanes(bench.admin_token, CONCURRENCY) as lanes:
        with EndWatcher(bench) as watcher:
            await lanes.run(10, lambda client: one(client, watcher), time_limit=60)  # warm-up
            calls_before = await bench.model_calls()
            worker = bench.facts["pydantic_ai_worker"]
            assert bench.api is not None
            bench.profiler.start(f"{key}-api", bench.api.pid)
            bench.profiler.start(f"{key}-worker", worker.pid)
            meter = bench.cpu_meter(worker=worker)
            statuses, wall = await lanes.run(
                count, lambda client: one(client, watcher), time_limit=300
            )
            cpu = meter.stop()
            profiles = bench.profiler.stop()
    return {
        "executions": len(statuses),
        "finished": statuses.count("finished"),
        "statuses": {s: statuses.count(s) for s in set(statuses)},
        "model_calls_per_execution": round(
            (await bench.model_calls() - calls_before) / max(1, len(statuses)), 2
        ),
        "wall_s": round(wall, 2),
        "cpu_s": cpu,
        "cpu_ms_per_execution": per_unit_ms(cpu, len(statuses)),
        "profiles": profiles,
    }


async def _baseline(bench: BenchRun, key: str, count: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.plain_agent", "--model-url", bench.model_url]
    argv += ["--key", key, "--input", json.dumps(INPUTS[key]), "--count", str(count)]
    argv += ["--concurrency", str(CONCURRENCY)]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=bench.stack.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 300)
    if process.returncode != 0:
        raise RuntimeError(f"bench.plain_agent failed:\n{err.decode()[-2000:]}")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    figures["cpu_ms_per_execution"] = round(1000 * figures["cpu_s"] / max(1, count), 2)
    return figures


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    count = bench.sizes.pydantic_ai_executions
    await bench.model.configure(latency=0, reset=True)
    types: dict[str, Any] = {}
    async with bench.worker() as worker:
        bench.facts["pydantic_ai_worker"] = worker
        try:
            for key in INPUTS:
                agent_id = await _agent_of_type(bench, key)
                baseline = await _baseline(bench, key, count)
                service = await _service(bench, agent_id, key, count)
                per_execution = service["cpu_ms_per_execution"]
                service_ms = sum(per_execution.get(name, 0.0) for name in SERVICE)
                ratio = service_ms / max(0.01, baseline["cpu_ms_per_execution"])
                types[key] = {
                    "service": service,
                    "baseline": baseline,
                    "service_cpu_ms_per_execution": round(service_ms, 2),
                    "baseline_cpu_ms_per_execution": baseline["cpu_ms_per_execution"],
                    "ratio": round(ratio, 2),
                    "where_the_rest_goes_ms": {
                        "worker_beyond_baseline": round(
                            per_execution.get("worker", 0.0) - baseline["cpu_ms_per_execution"], 2
                        ),
                        **{
                            name: per_execution.get(name, 0.0)
                            for name in SERVICE
                            if name != "worker"
                        },
                    },
                }
        finally:
            bench.facts.pop("pydantic_ai_worker", None)
    profiles = {name: p for t in types.values() for name, p in t["service"].pop("profiles").items()}
    worst = max(t["ratio"] for t in types.values())
    complete = all(t["service"]["finished"] == t["service"]["executions"] for t in types.values())
    notes = [] if complete else ["some executions did not finish"]
    return Result(
        figures={"types": types, "concurrency": CONCURRENCY},
        ratio=round(worst, 2),
        target=f"service CPU / plain agent.run() CPU <= {TARGET} (each type)",
        met=complete and worst <= TARGET,
        notes=notes,
        profiles=profiles,
    )

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

``database_work``: what the executions of each type (its 10 warm-up ones and the measured
ones) wrote in PostgreSQL, from the cumulative statistics of the scratch database read before
and after them: rows inserted, updated and deleted per execution in each table
(``pg_stat_user_tables``) and transactions per execution (``pg_stat_database``, committed and
rolled back; the harness's own, its end watcher's queries and these readings, counted and left
out). A backend publishes its counters when it goes idle, at most once a second, and one that
went idle within a second of its last report does so 10 s later (PostgreSQL 15's
PGSTAT_IDLE_INTERVAL; ``pg_stat_force_next_flush()`` acts on the calling backend only): so
each reading comes STATS_SETTLE_SECONDS after the last activity, after
``pg_stat_clear_snapshot()``. What the idle worker and API do meanwhile (heartbeats, the
reconciler's look) counts in, spread over the executions.

``durable_floor``: a second baseline, outside the target: the same plain runs plus the least
persistence a durable execution service needs (bench/plain_agent.py ``--durable``: the
execution row at submit, running, a journal row per model response, finished with the
result, through one asyncpg pool), its CPU that process's plus its PostgreSQL backends'.
``service_over_floor`` beside ``ratio`` says how much of the ratio durability itself costs.
The baselines and floors of both types run first, before the statistics' first reading.
"""

import asyncio
import json
import sys
from typing import Any

from bench.context import BenchRun
from bench.cpu import SERVICE_PROCESSES, per_unit_ms
from bench.scenarios import Result
from bench.scenarios.latency import EndWatcher
from bench.stack import ROOT

TARGET = 1.5
CONCURRENCY = 20
WARM_UP = 10
STATS_SETTLE_SECONDS = 11.0
TABLE_COUNTERS = "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
DATABASE_COUNTERS = """
SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()
"""
# The harness's transactions besides its end watcher's queries, from one reading to the next:
# the first reading's own and its connection's reset on release, the watcher's reset.
HARNESS_TRANSACTIONS = 3
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
            await lanes.run(WARM_UP, lambda client: one(client, watcher), time_limit=60)
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
        "harness_queries": watcher.queries,
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


async def _db_counters(bench: BenchRun) -> dict[str, Any]:
    """The scratch database's cumulative counters, as published by now (see the docstring)."""
    async with bench.pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        tables = await connection.fetch(TABLE_COUNTERS)
        database = await connection.fetchrow(DATABASE_COUNTERS)
    return {
        "tables": {r["relname"]: (r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"]) for r in tables},
        "xact_commit": database["xact_commit"],
        "xact_rollback": database["xact_rollback"],
    }


def _db_work(
    before: dict[str, Any], after: dict[str, Any], executions: int, harness: int
) -> dict[str, Any]:
    """Rows written per execution by table, and transactions per execution."""
    n = max(1, executions)
    tables: dict[str, dict[str, float]] = {}
    for name, counts in sorted(after["tables"].items()):
        old = before["tables"].get(name, (0, 0, 0))
        inserted, updated, deleted = (a - b for a, b in zip(counts, old, strict=True))
        if inserted or updated or deleted:
            tables[name] = {
                "inserted": round(inserted / n, 2),
                "updated": round(updated / n, 2),
                "deleted": round(deleted / n, 2),
            }
    commits = after["xact_commit"] - before["xact_commit"] - harness
    return {
        "executions": executions,
        "rows_written_per_execution": round(sum(sum(t.values()) for t in tables.values()), 2),
        "tables_per_execution": tables,
        "transactions_per_execution": round(commits / n, 2),
        "rollbacks_per_execution": round((after["xact_rollback"] - before["xact_rollback"]) / n, 2),
        "harness_transactions_left_out": harness,
    }


async def _baseline(bench: BenchRun, key: str, count: int, durable: bool = False) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.plain_agent", "--model-url", bench.model_url]
    argv += ["--key", key, "--input", json.dumps(INPUTS[key]), "--count", str(count)]
    argv += ["--concurrency", str(CONCURRENCY)]
    if durable:
        argv += ["--durable", "--dsn", bench.stack.dsn]
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
    n = max(1, count)
    if durable:
        figures["process_cpu_ms_per_execution"] = round(1000 * figures["cpu_s"] / n, 2)
        figures["postgres_cpu_ms_per_execution"] = round(1000 * figures["postgres_cpu_s"] / n, 2)
        figures["transactions_per_execution"] = round(figures["transactions"] / n, 2)
        figures["cpu_ms_per_execution"] = round(
            1000 * (figures["cpu_s"] + figures["postgres_cpu_s"]) / n, 2
        )
    else:
        figures["cpu_ms_per_execution"] = round(1000 * figures["cpu_s"] / n, 2)
    return figures


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    count = bench.sizes.pydantic_ai_executions
    await bench.model.configure(latency=0, reset=True)
    types: dict[str, Any] = {}
    agents = {key: await _agent_of_type(bench, key) for key in INPUTS}
    # The baselines first, so that the floor's statements are not counted in the service's.
    baselines = {key: await _baseline(bench, key, count) for key in INPUTS}
    floors = {key: await _baseline(bench, key, count, durable=True) for key in INPUTS}
    async with bench.worker() as worker:
        bench.facts["pydantic_ai_worker"] = worker
        try:
            await asyncio.sleep(STATS_SETTLE_SECONDS)
            counters = await _db_counters(bench)
            for key, agent_id in agents.items():
                baseline, floor = baselines[key], floors[key]
                service = await _service(bench, agent_id, key, count)
                await asyncio.sleep(STATS_SETTLE_SECONDS)
                counters_after = await _db_counters(bench)
                database_work = _db_work(
                    counters,
                    counters_after,
                    WARM_UP + service["executions"],
                    service.pop("harness_queries") + HARNESS_TRANSACTIONS,
                )
                counters = counters_after
                per_execution = service["cpu_ms_per_execution"]
                service_ms = sum(per_execution.get(name, 0.0) for name in SERVICE_PROCESSES)
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
                            for name in SERVICE_PROCESSES
                            if name != "worker"
                        },
                    },
                    "database_work": database_work,
                    "durable_floor": {
                        **floor,
                        "service_over_floor": round(
                            service_ms / max(0.01, floor["cpu_ms_per_execution"]), 2
                        ),
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

"""What every scenario shares: the stack, the API, the model server, users, the agent."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.cpu import CpuMeter
from bench.driver import Lanes, ModelServer, http_client, submit_and_wait
from bench.profiling import Profiler
from bench.stack import Process, Stack

TERMINAL_COUNTS = """
SELECT count(*) FILTER (WHERE status IN ('finished', 'failed')) AS terminal,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM agentic_executions WHERE id = ANY($1::int[])
"""
DB_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Sizes:
    overhead_executions: int = 200
    overhead_concurrency: int = 20
    concurrency_executions: int = 500
    concurrency_latency: float = 1.0
    submit_posts: int = 2000
    submit_concurrency: int = 50
    list_rows: int = 1_000_000
    list_samples: int = 100
    memory_executions: int = 500
    stream_count: int = 1000
    protocol_rounds: int = 100
    latency_rounds: int = 200
    latency_loaded_executions: int = 1000
    fleet_slots: int = 100
    pydantic_ai_executions: int = 200
    fleet_workers: tuple[int, ...] = (1, 2, 4, 8)
    batch_items: int = 10_000
    schedules: int = 1000


FULL = Sizes()
QUICK = Sizes(
    overhead_executions=50,
    concurrency_executions=100,
    submit_posts=500,
    list_rows=100_000,
    list_samples=30,
    memory_executions=200,
    stream_count=200,
    protocol_rounds=30,
    latency_rounds=60,
    latency_loaded_executions=400,
    fleet_slots=40,
    pydantic_ai_executions=60,
    fleet_workers=(1, 2, 4),
    schedules=200,
)


@dataclass
class BenchRun:
    stack: Stack
    sizes: Sizes
    profiler: Profiler
    api: Process | None = None
    model: ModelServer | None = None
    model_process: Process | None = None
    model_root: str = ""  # http://127.0.0.1:<port>
    model_url: str = ""  # the agents' base_url: model_root + /v1
    pool: Any = None  # asyncpg.Pool on the scratch database
    admin_token: str = ""
    user_token: str = ""
    user_id: int = 0
    dataset_id: int = 0
    agent_id: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    # PostgreSQL backend pids of ``pool``: their CPU is the harness's, not the service's.
    harness_backends: set[int] = field(default_factory=set)

    @property
    def work_dir(self) -> Path:
        return self.stack.work_dir

    async def set_up(self) -> None:
        started = time.perf_counter()
        await self.stack.create_database()
        await self.stack.flush_redis()
        self.model_process = model_process = await self.stack.start_model_server()
        self.model = ModelServer(model_process.url)
        self.model_root = model_process.url
        self.model_url = f"{model_process.url}/v1"
        self.admin_token = (await self.stack.cli("users", "create", "bench", "--admin")).split()[-1]
        self.user_token = (await self.stack.cli("users", "create", "bench-user")).split()[-1]
        self.api = await self.stack.start_api()
        self.pool = await asyncpg.create_pool(
            self.stack.dsn, min_size=1, max_size=4, init=self._harness_connection
        )
        async with self.client(self.user_token) as client:
            self.user_id = (await client.get("/api/users/me/")).json()["id"]
        self.dataset_id, self.agent_id = await self.create_agent("bench")
        self.facts["setup_seconds"] = round(time.perf_counter() - started, 1)

    async def create_agent(self, name: str, dataset_id: int | None = None) -> tuple[int, int]:
        """A structured-task agent on the mock model (on a new dataset unless one is given),
        with the non-admin user as a member of the dataset."""
        async with self.client(self.admin_token) as client:
            if dataset_id is None:
                created = await client.post("/api/datasets/", json={"name": f"{name} dataset"})
                created.raise_for_status()
                dataset_id = int(created.json()["id"])
                member = await client.post(
                    f"/api/datasets/{dataset_id}/members/", json={"user_id": self.user_id}
                )
                member.raise_for_status()
            agent = await client.post(
                "/api/agents/",
                json={
                    "name": name,
                    "dataset_id": dataset_id,
                    "agent_type": "structured-task",
                    "model": {"name": "openai:mock", "base_url": self.model_url},
                },
            )
            agent.raise_for_status()
            return dataset_id, int(agent.json()["id"])

    def cpu_meter(self, api: Process | None = None, **processes: Process) -> CpuMeter:
        """A meter of the harness, the API (``api``, else the one of the run), the model server
        and ``processes``, started."""
        api = api or self.api
        assert api is not None
        pids = {"harness": os.getpid(), "api": api.pid}
        if self.model_process is not None:
            pids["model"] = self.model_process.pid
        pids.update({name: process.pid for name, process in processes.items()})
        return CpuMeter(pids, self.stack.database, self.harness_backends).start()

    async def _harness_connection(self, connection: Any) -> None:
        self.harness_backends.add(connection.get_server_pid())

    def client(self, token: str | None = None, connections: int = 2) -> httpx.AsyncClient:
        assert self.api is not None
        return http_client(self.api.url, token, connections)

    def lanes(self, token: str | None, count: int, base_url: str | None = None) -> Lanes:
        """``count`` clients of the API (or of ``base_url``) for concurrent request loops."""
        assert self.api is not None
        return Lanes(base_url or self.api.url, token, count)

    @contextlib.asynccontextmanager
    async def worker(self) -> AsyncIterator[Process]:
        """A fresh worker process for one scenario, stopped at its end."""
        process = await self.stack.start_worker()
        try:
            yield process
        finally:
            self.stack.stop(process)

    async def model_calls(self) -> int:
        assert self.model is not None
        return int((await self.model.stats())["calls"])

    async def warm_up(self, count: int, concurrency: int = 5) -> float:
        """Run ``count`` executions end to end (imports, connections, the model client); the
        model calls per execution they took."""
        before = await self.model_calls()
        async with self.lanes(self.admin_token, concurrency) as lanes:
            results, _ = await lanes.run(
                count, lambda client: submit_and_wait(client, self.agent_id, 60), time_limit=120
            )
        finished = [r for r in results if r.body.get("status") == "finished"]
        if not finished:
            failures = {r.body.get("failure_code") or r.status_code for r in results}
            raise RuntimeError(
                f"warm-up executions did not finish ({failures}; first: {results[0].body}); "
                f"see the process logs in {self.work_dir}"
            )
        return (await self.model_calls() - before) / len(results)

    async def wait_terminal(self, ids: list[int], time_limit: float) -> tuple[int, int, float]:
        """Poll PostgreSQL until every execution of ``ids`` is terminal or time runs out:
        (terminal, failed, the perf_counter time it was seen)."""
        deadline = time.perf_counter() + time_limit
        while True:
            row = await self.pool.fetchrow(TERMINAL_COUNTS, ids)
            now = time.perf_counter()
            if row["terminal"] >= len(ids) or now > deadline:
                return row["terminal"], row["failed"], now
            await asyncio.sleep(DB_POLL_SECONDS)

    async def discard_open_executions(self) -> int:
        """Fail whatever is still open and empty the queue, so the next scenario starts clean
        (a worker's reconciler would otherwise run them)."""
        status = await self.pool.execute(
            "UPDATE agentic_executions SET status = 'failed', failure_code = 'bench_discarded',"
            " failure_explanation = 'left open by a benchmark scenario', finished_at = now()"
            " WHERE status IN ('pending', 'in_progress')"
        )
        await self.stack.flush_redis()
        return int(status.split()[-1])

    async def close(self) -> None:
        if self.model is not None:
            await self.model.aclose()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), 10)

"""Fault tests: the real API and workers as processes (killed, stopped, restarted) against the
test PostgreSQL and Redis database, with a model served by tests/mock_openai.py.

Intervals are shortened (heartbeat, reconcile, staleness) so that each test takes seconds.
"""

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.core.config import Settings
from app.executions.models import TERMINAL_STATUSES, AgenticExecution
from tests.factories import Account, Factory
from tests.mock_openai import MockOpenAI
from tests.worker.harness import Worker, worker_context
from workers.run.state import WorkerState

ROOT = Path(__file__).resolve().parents[2]

# Short enough for tests of seconds; the heartbeat still beats several times per staleness.
FAST = {
    "heartbeat_seconds": 0.5,
    "reconcile_seconds": 0.5,
    "stale_after_seconds": 2.5,
    "worker_database_retry_seconds": 10.0,
}


def environment(settings: Settings, **overrides: Any) -> dict[str, str]:
    """What a worker or API process needs to share the test's database, Redis and queue."""
    values: dict[str, Any] = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "queue_name": settings.queue_name,
        "media_root": settings.media_root,
        "default_model": "test",
        "log_format": "text",
        "metrics_port": 0,
        "encryption_keys": ",".join(key.get_secret_value() for key in settings.encryption_keys),
        "rate_limit_per_minute": 0,
        **FAST,
        **overrides,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRUN_")}
    env.update({f"AGENTRUN_{k.upper()}": str(v) for k, v in values.items()})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    """A process of ours: its output goes to a log file, read to know when it is ready."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def until_logged(self, text: str, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while text not in self.output():
            if self.process.returncode is not None:
                raise AssertionError(f"{self.name} exited:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {text!r} within {within} s")
            await asyncio.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signum)

    async def exited(self, within: float) -> int:
        return await asyncio.wait_for(self.process.wait(), within)


@dataclass
class Stack:
    settings: Settings
    directory: Path
    # Settings of every process started, beside the test's own.
    overrides: dict[str, Any] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    api_url: str = ""

    async def start(self, name: str, *args: str, **overrides: Any) -> Service:
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                cwd=ROOT,
                env=environment(self.settings, **{**self.overrides, **overrides}),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        service = Service(name, process, log)
        self.services.append(service)
        return service

    async def worker(self, name: str = "worker", **overrides: Any) -> Service:
        """A worker process (``agentrun worker``), once it polls the queue."""
        service = await self.start(name, "-m", "app.cli", "worker", **overrides)
        await service.until_logged("Starting worker for")
        return service

    async def api(self, **overrides: Any) -> str:
        """The API (uvicorn) on a free loopback port, once it answers."""
        port = free_port()
        service = await self.start(
            "api", "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
            **overrides,
        )  # fmt: skip
        self.api_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.api_url}/healthz")).status_code == 200:
                        return self.api_url
                if service.process.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the API did not start:\n{service.output()[-3000:]}")
                await asyncio.sleep(0.1)

    async def stop_all(self) -> None:
        for service in self.services:
            service.signal(signal.SIGKILL)
        for service in self.services:
            with contextlib.suppress(ProcessLookupError):
                await service.process.wait()


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path) -> AsyncIterator[Stack]:
    processes = Stack(settings, tmp_path)
    try:
        yield processes
    finally:
        await processes.stop_all()


@pytest.fixture
async def mock_model() -> AsyncIterator[MockOpenAI]:
    """The model server the workers call; each answer takes ``latency`` seconds (set it)."""
    async with MockOpenAI(latency=0.0) as server:
        yield server


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
async def worker_ctx(fast_settings: Settings) -> AsyncIterator[WorkerState]:
    async with worker_context(fast_settings) as ctx:
        yield ctx


@pytest.fixture
def worker(worker_ctx: WorkerState) -> Worker:
    return Worker(worker_ctx)


@dataclass
class Submitter:
    """Starts structured-task executions through the API, as a client would."""

    api_url: str
    account: Account
    agent_id: int

    async def submit(self, count: int, label: str = "Task") -> list[int]:
        ids = []
        async with httpx.AsyncClient(base_url=self.api_url, headers=self.account.headers) as api:
            for number in range(count):
                response = await api.post(
                    f"/api/agents/{self.agent_id}/agentic-executions/",
                    json={
                        "execution_key": "structured-task",
                        "input": {"instructions": f"{label} {number}."},
                    },
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        return ids


async def mock_agent(factory: Factory, model_url: str) -> tuple[Account, Agent]:
    """A user and a structured-task agent of theirs whose model is the mock server."""
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner),
        agent_type="structured-task",
        model_settings={"name": "openai:mock", "base_url": model_url},
    )
    return owner, agent


async def statuses(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[int]
) -> list[AgenticExecution]:
    async with sessionmaker() as session:
        query = select(AgenticExecution).where(AgenticExecution.id.in_(ids))
        return list((await session.scalars(query.order_by(AgenticExecution.id))).all())


async def until(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[int],
    done: Callable[[AgenticExecution], bool],
    within: float,
) -> list[AgenticExecution]:
    """Poll until ``done`` holds for every execution; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        rows = await statuses(sessionmaker, ids)
        if len(rows) == len(ids) and all(done(row) for row in rows):
            return rows
        if time.monotonic() > deadline:
            summary = [(r.id, r.status, r.attempts, r.failure_code) for r in rows]
            raise AssertionError(f"not reached within {within} s: {summary}")
        await asyncio.sleep(0.05)


def terminal(row: AgenticExecution) -> bool:
    return row.status in TERMINAL_STATUSES


async def count_open(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        query = select(func.count()).where(AgenticExecution.status.in_(["pending", "in_progress"]))
        return await session.scalar(query) or 0


def requests_per_label(mock: MockOpenAI) -> dict[str, int]:
    """How many model requests each execution made, by its instructions."""
    counts: dict[str, int] = {}
    for request in mock.requests:
        prompt = next((m["content"] for m in request["messages"] if m["role"] == "user"), "")
        label = str(prompt).split("Instructions:\n", 1)[-1].split("\n", 1)[0]
        counts[label] = counts.get(label, 0) + 1
    return counts

"""A Redis of the test's own, stopped and started again empty, as a Redis restart without
persistence does: the worker lives through it and every execution still runs, once."""

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Factory
from tests.faults.conftest import Stack, Submitter, free_port, mock_agent, terminal, until
from tests.faults.test_worker_processes import model_calls
from tests.mock_openai import MockOpenAI

REDIS_SERVER = shutil.which("redis-server")


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = await asyncio.create_subprocess_exec(
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with Redis.from_url(self.url) as client:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(RedisError, OSError):
                    if await client.ping():
                        return
                assert time.monotonic() < deadline, "redis-server did not start"
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_worker_outlives_a_redis_restart_and_runs_what_was_submitted_meanwhile(
    stack: Stack,
    private_redis: PrivateRedis,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.latency = 2
    owner, agent = await mock_agent(factory, mock_model.url)
    submitter = Submitter(await stack.api(redis_url=private_redis.url), owner, agent.id)
    worker = await stack.worker(redis_url=private_redis.url)
    running = await submitter.submit(2)
    await model_calls(mock_model, 2)

    await private_redis.stop()
    # Accepted while Redis is down (stored, not enqueued); the running ones end meanwhile.
    submitted_meanwhile = await submitter.submit(2, label="Meanwhile")
    ran = await until(sessionmaker, running, terminal, within=10)
    await asyncio.sleep(1)
    assert worker.process.returncode is None
    await private_redis.start()  # empty, as after a restart without persistence
    mock_model.latency = 0.2
    rows = await until(sessionmaker, submitted_meanwhile, terminal, within=20)

    assert [(row.status, row.attempts) for row in ran + rows] == [("finished", 1)] * 4
    assert len(mock_model.requests) == 4
    assert worker.process.returncode is None

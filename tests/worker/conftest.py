"""Fixtures running the real worker code against the test database and Redis."""

from collections.abc import AsyncIterator

import pytest

from app.core.config import Settings
from tests.mock_openai import MockOpenAI
from tests.worker.harness import Worker, worker_context
from workers.run.state import WorkerState


@pytest.fixture
async def worker_ctx(settings: Settings) -> AsyncIterator[WorkerState]:
    async with worker_context(settings) as ctx:
        yield ctx


@pytest.fixture
def worker(worker_ctx: WorkerState) -> Worker:
    return Worker(worker_ctx)


@pytest.fixture
async def mock_openai() -> AsyncIterator[MockOpenAI]:
    async with MockOpenAI() as server:
        yield server

"""The worker's code run in the test's process, for the ticks' executions."""

from collections.abc import AsyncIterator

import pytest

from app.core.config import Settings
from tests.worker.harness import Worker, worker_context
from workers.run.state import WorkerState


@pytest.fixture
async def worker_ctx(settings: Settings) -> AsyncIterator[WorkerState]:
    async with worker_context(settings) as ctx:
        yield ctx


@pytest.fixture
def worker(worker_ctx: WorkerState) -> Worker:
    return Worker(worker_ctx)

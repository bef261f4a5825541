"""The worker's fixtures (tests/worker/conftest.py) and a browser tab."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.console.browser import Page, chromium
from tests.worker.conftest import worker, worker_ctx

__all__ = ["worker", "worker_ctx"]


@pytest.fixture
async def page(live_url: str, tmp_path: Path) -> AsyncIterator[Page]:
    # After the server (live_url) is up, closed before it: an open page's event stream would
    # keep the server's shutdown waiting.
    async with chromium(tmp_path / "profile") as page:
        yield page

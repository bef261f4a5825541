"""The worker's fixtures (tests/worker/conftest.py), a webhook receiver and a browser tab."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from tests.console.browser import Page, chromium
from tests.webhook_receiver import Receiver, webhook_receiver
from tests.worker.conftest import worker, worker_ctx
from workers.webhook_delivery import WebhookSender

__all__ = ["worker", "worker_ctx"]


@pytest.fixture
async def page(live_url: str, tmp_path: Path) -> AsyncIterator[Page]:
    # After the server (live_url) is up, closed before it: an open page's event stream would
    # keep the server's shutdown waiting.
    async with chromium(tmp_path / "profile") as page:
        yield page


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
async def sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(sessionmaker, settings)
    yield sender
    await sender.aclose()

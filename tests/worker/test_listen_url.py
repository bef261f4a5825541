"""AGENTRUN_DATABASE_LISTEN_URL: where the API's event listener LISTENs (behind PgBouncer in
transaction mode, PostgreSQL itself; deploy/README.md, PgBouncer)."""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from httpx import AsyncClient

from app.core.config import Settings
from app.events.listener import ListenUrlError
from app.main import create_app
from tests.factories import Factory, client_with_settings
from tests.sse import Event, follow
from tests.worker.harness import Worker
from tests.worker.test_event_stream import events_url, next_event, script, served, start_task


def spelled_otherwise(database_url: str) -> str:
    """The same database under another URL: the plain scheme, and a driver option."""
    url = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return f"{url}{'&' if '?' in url else '?'}ssl=disable"


@contextmanager
def listener_log() -> Iterator[list[str]]:
    """What the event listener logs meanwhile."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("app.events.listener")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


async def test_a_live_stream_is_woken_through_the_listen_url(
    settings: Settings, client: AsyncClient, factory: Factory, worker: Worker
) -> None:
    owner, started = await start_task(client, factory)
    # Keep-alives (which also re-read the log) far apart: only notifications move the stream.
    async with (
        served(
            settings,
            database_listen_url=spelled_otherwise(settings.listen_url),
            event_stream_keep_alive_seconds=600,
        ) as url,
        httpx.AsyncClient(base_url=url, headers=owner.headers, timeout=20) as api,
        api.stream("GET", events_url(started["id"])) as response,
    ):
        events = follow(response)
        assert (await next_event(events)).data["status"] == "pending"
        run = asyncio.create_task(worker.run(started["id"], script()))
        # Bounded: a stream no notification reaches would wait for the next keep-alive.
        async with asyncio.timeout(60):
            received = [item async for item in events if isinstance(item, Event)]
            assert await run == "finished"

    assert received[0].data["status"] == "in_progress"
    assert received[-1].data["status"] == "finished"


async def test_an_unreachable_listen_url_is_logged_without_its_password(
    settings: Settings, factory: Factory
) -> None:
    owner = await factory.account()
    dead = "postgresql+asyncpg://agentrun:s3cret@127.0.0.1:1/agentrun"
    with listener_log() as lines:
        async with client_with_settings(settings, database_listen_url=dead) as client:
            # The API itself works on AGENTRUN_DATABASE_URL.
            me = await client.get("/api/users/me/", headers=owner.headers)
            async with asyncio.timeout(10):
                while not lines:
                    await asyncio.sleep(0.05)

    assert me.status_code == 200
    assert lines[0].startswith(
        "event listener: cannot connect to PostgreSQL at "
        "postgresql+asyncpg://agentrun:***@127.0.0.1:1/agentrun ("
    )
    assert "s3cret" not in "".join(lines)


@pytest.mark.parametrize(
    "listen_url",
    [
        "not a url",
        "postgresql+asyncpg://agentrun:s3cret@db:notaport/agentrun",
        "mysql://agentrun:s3cret@db/agentrun",
    ],
)
async def test_a_listen_url_that_is_no_postgresql_url_stops_the_start_up(
    settings: Settings, listen_url: str
) -> None:
    app = create_app(settings.model_copy(update={"database_listen_url": listen_url}))

    with pytest.raises(ListenUrlError) as refused:
        async with app.router.lifespan_context(app):
            pass

    message = str(refused.value)
    assert message.startswith("AGENTRUN_DATABASE_LISTEN_URL (else AGENTRUN_DATABASE_URL) must be")
    assert "s3cret" not in message

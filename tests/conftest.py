"""A fresh PostgreSQL database per test run (migrated by Alembic), real Redis, the real app."""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn
from alembic import command
from alembic.config import Config
from arq.connections import ArqRedis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.encryption import new_key
from app.executions.queue import create_queue
from app.main import create_app
from app.models import Base
from tests.factories import Factory
from tests.webhook_receiver import Receiver, webhook_receiver
from workers.background.webhook_delivery import WebhookSender

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# With TEST_POSTGRES_URL at PgBouncer: PostgreSQL's own address (postgresql://user@host:port),
# for the event listener's LISTEN (AGENTRUN_DATABASE_LISTEN_URL, deploy/README.md).
LISTEN_SERVER_URL = os.environ.get("TEST_POSTGRES_LISTEN_URL")
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
# Databases a test run may take: 0 is the default of `make dev`, 14 the benchmark's.
TEST_REDIS_DATABASES = range(1, 14)


FAULTS = Path(__file__).resolve().parent / "faults"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/faults/ is marked ``faults`` (``make test-fast`` leaves it out)."""
    for item in items:
        if FAULTS in item.path.parents:
            item.add_marker(pytest.mark.faults)


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url)
    config.attributes["configure_logging"] = False
    return config


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name = f"agentrun_test_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(SERVER_URL)
    await server.execute(f'CREATE DATABASE "{name}"')
    url = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    database_url = f"{url}/{name}"
    try:
        # env.py runs its own event loop, so Alembic gets a thread of its own.
        await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")
        yield database_url
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.fixture(scope="session")
async def redis_url() -> AsyncIterator[str]:
    """A Redis database of this run's own: tests flush it, so concurrent runs must not share."""
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    claim = f"agentrun:test-run:{uuid.uuid4().hex}"
    async with Redis.from_url(f"{REDIS_SERVER}/0") as registry:
        for number in TEST_REDIS_DATABASES:
            lock = f"agentrun:test-redis-db:{number}"
            # Expires on its own should a run die without releasing it.
            if await registry.set(lock, claim, nx=True, ex=3600):
                break
        else:
            pytest.fail("every test Redis database is taken by another test run")
        try:
            yield f"{REDIS_SERVER}/{number}"
        finally:
            if await registry.get(lock) == claim.encode():
                await registry.delete(lock)


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    database_name = database_url.rsplit("/", 1)[1]
    return Settings(
        database_url=database_url,
        database_listen_url=LISTEN_SERVER_URL and f"{LISTEN_SERVER_URL}/{database_name}",
        redis_url=redis_url,
        queue_name=f"agentrun:test:{uuid.uuid4().hex[:10]}",
        media_root=tmp_path_factory.mktemp("media"),
        default_model="test",
        # Gauges read afresh at every scrape, so that a test sees its own rows.
        metrics_refresh_seconds=0,
        # Webhook receivers of the tests listen on loopback (the SSRF tests turn it off).
        webhook_allow_private_networks=True,
        # No operator port: test runs side by side would contend for 9100 (tests that scrape
        # start an app of their own on a free port, tests/core/test_observability.py).
        metrics_port=0,
        # Stored webhook secrets are encrypted under it (app/core/encryption.py).
        encryption_keys=[SecretStr(new_key())],
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    queue = await create_queue(settings)
    yield queue
    await queue.aclose()


@pytest.fixture(autouse=True)
async def clean_state(engine: AsyncEngine, queue: ArqRedis, settings: Settings) -> None:
    """Every test starts from empty tables (ids from 1), Redis database and media root."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await queue.flushdb()
    shutil.rmtree(settings.media_root, ignore_errors=True)
    settings.media_root.mkdir(parents=True)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served over real HTTP on a free loopback port, for browsers and subprocesses."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture
def factory(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Factory:
    return Factory(sessionmaker, settings)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback, recording what it is sent."""
    async with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
async def sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[WebhookSender]:
    """The worker's webhook sender, for a test to drive the outbox itself."""
    sender = WebhookSender(sessionmaker, settings)
    yield sender
    await sender.aclose()

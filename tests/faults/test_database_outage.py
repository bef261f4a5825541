"""PostgreSQL going away mid-run: the worker's writes wait for it, and nothing is lost.

The shared PostgreSQL cannot be stopped, so the worker reaches it through a TCP gate of ours
that can be shut: open connections are cut and new ones refused, as when the server restarts.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from arq.connections import ArqRedis
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database_errors import is_database_outage
from tests.factories import Factory
from tests.faults.conftest import mock_agent
from tests.worker.harness import Worker, answer, reload, roles, trace
from workers.process.startup import shutdown, startup
from workers.run.state import state_of


class Gate:
    """A TCP proxy in front of PostgreSQL that can be shut and opened again."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.open = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def shut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        self.shut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def gate(settings: Settings) -> AsyncIterator[Gate]:
    server = urlsplit(settings.database_url)
    gate = Gate(server.hostname or "127.0.0.1", server.port or 5432)
    await gate.start()
    yield gate
    await gate.stop()


@contextlib.asynccontextmanager
async def gated_worker(settings: Settings, gate: Gate, **changes: Any) -> AsyncIterator[Worker]:
    """A worker (as arq's on_startup builds it) whose PostgreSQL is behind the gate."""
    server = urlsplit(settings.database_url)
    url = server._replace(netloc=f"{server.username}@127.0.0.1:{gate.port}").geturl()
    ctx: dict[str, Any] = {"settings": settings.model_copy(update={"database_url": url, **changes})}
    await startup(ctx)
    try:
        yield Worker(state_of(ctx))
    finally:
        gate.open = True
        await shutdown(ctx)


def outage_during_the_model_call(gate: Gate, seconds: float | None) -> FunctionModel:
    """A model whose answer comes while PostgreSQL is unreachable, for ``seconds`` (None: until
    the test opens the gate)."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        gate.shut()
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, setattr, gate, "open", True)
        step = answer({"hi": True})
        assert callable(step)
        return step(messages, info)

    return FunctionModel(respond)


async def test_a_result_is_stored_once_postgresql_is_back(
    fast_settings: Settings,
    gate: Gate,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await mock_agent(factory, "http://127.0.0.1:1/v1")
    execution = await factory.execution(agent, owner, input={"instructions": "Say hi."})

    async with gated_worker(fast_settings, gate) as worker:
        status = await worker.run(execution.id, outage_during_the_model_call(gate, 3))

    assert status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result, done.attempts) == ("finished", {"hi": True}, 1)
    assert roles(await trace(sessionmaker, execution.conversation_id))[-1] == "result"


async def test_an_outcome_not_stored_in_time_is_run_again_once_postgresql_is_back(
    fast_settings: Settings,
    gate: Gate,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await mock_agent(factory, "http://127.0.0.1:1/v1")
    execution = await factory.execution(agent, owner, input={"instructions": "Say hi."})

    async with gated_worker(fast_settings, gate, worker_database_retry_seconds=1) as worker:
        with pytest.raises(Exception) as raised:  # noqa: PT011 (whatever the driver raises)
            await worker.run(execution.id, outage_during_the_model_call(gate, None))
        gate.open = True

        # The worker gave up: the execution is still in progress, and its heartbeat, which
        # nobody bumps any more, goes stale; the reconciler then hands it to a worker.
        assert (await reload(sessionmaker, execution.id)).status == "in_progress"
        for _ in range(100):
            if await worker.reconcile(queue):
                break
            await asyncio.sleep(0.1)
        assert len(await queue.queued_jobs()) == 1
        status = await worker.run(execution.id, FunctionModel(answer_hi))

    assert is_database_outage(raised.value)
    assert status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.attempts) == ("finished", 2)


def answer_hi(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    step = answer({"hi": True})
    assert callable(step)
    return step(messages, info)

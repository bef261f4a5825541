"""Waking the event streams of an API process when their execution's events commit.

One connection per process LISTENs on ``agentrun_execution_events`` (the triggers NOTIFY it,
delivered by PostgreSQL when the writing transaction commits); a notification wakes the streams
of that execution, which then read what is new from the log. No stream polls the database:
an idle stream costs an ``asyncio.Event`` and its response, nothing in PostgreSQL.

Should the connection be lost, it is opened again (every ``RECONNECT_SECONDS``), and every
stream is woken once it is back: events committed meanwhile are read from the log, so none
is missed.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg

from app.events.models import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0


def driver_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as asyncpg takes it."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class EventListener:
    def __init__(self, database_url: str) -> None:
        self._dsn = driver_dsn(database_url)
        self._waiting: defaultdict[int, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def listening(self) -> bool:
        """Whether notifications arrive now (else a follower that cannot wait for the
        reconnection reads the log on a timer)."""
        return self._listening

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="execution event listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def subscribe(self, execution_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever ``execution_id`` may have new events (the caller clears it
        before each read). Subscribe before reading the log, so that nothing falls between."""
        woken = asyncio.Event()
        self._waiting[execution_id].add(woken)
        try:
            yield woken
        finally:
            waiting = self._waiting[execution_id]
            waiting.discard(woken)
            if not waiting:
                del self._waiting[execution_id]

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        # '<execution id>'; '<execution id> <sequence>' before migration 0023.
        execution_id = int(payload.split(" ", 1)[0])
        for woken in self._waiting.get(execution_id, ()):
            woken.set()

    def _wake_all(self) -> None:
        for waiting in self._waiting.values():
            for woken in waiting:
                woken.set()

    async def _listen(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.warning("event listener: cannot connect to PostgreSQL (%s)", exc)
            else:
                try:
                    await self._listen_on(connection)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=2))
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_on(self, connection: asyncpg.Connection) -> None:
        """Dispatch the notifications of ``connection`` until it is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("event listener: %s", exc)
            return
        # Events committed while no connection listened are in the log: read them.
        self._listening = True
        self._wake_all()
        try:
            await lost.wait()
        finally:
            self._listening = False
        logger.warning("event listener: connection to PostgreSQL lost, reconnecting")

"""Waking the event streams of an API process when their execution's events commit.

One connection per process LISTENs on ``agentrun_execution_events`` (the triggers NOTIFY it,
delivered by PostgreSQL when the writing transaction commits); a notification wakes the streams
of that execution, which then read what is new from the log. No stream polls the database:
an idle stream costs an ``asyncio.Event`` and its response, nothing in PostgreSQL.

Should the connection be lost, it is opened again (every ``RECONNECT_SECONDS``), and every
stream is woken once it is back: events committed meanwhile are read from the log, so none
is missed.

The connection is opened from ``Settings.listen_url`` (``AGENTRUN_DATABASE_LISTEN_URL``, else
the database URL): LISTEN holds one server connection for as long as it runs, which a pooler
in transaction mode does not give, so behind PgBouncer it names PostgreSQL itself. A URL that
is no PostgreSQL URL stops the start-up, as a malformed database URL does.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.events.models import BATCH_NOTIFY_CHANNEL, NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0
# What SQLAlchemy's asyncpg adapter takes from a URL's query for itself, not for asyncpg.
_ADAPTER_OPTIONS = ("prepared_statement_cache_size", "prepared_statement_name_func")


class ListenUrlError(ValueError):
    """The listener's URL is no PostgreSQL URL (the message never holds its password)."""


def connect_arguments(database_url: str) -> tuple[dict[str, Any], str]:
    """``asyncpg.connect``'s keyword arguments for a SQLAlchemy URL, read as the app's engine
    reads ``AGENTRUN_DATABASE_URL`` (query options such as ``ssl=require`` included), and the
    URL as a log may show it (no password)."""
    try:
        url = make_url(database_url)
        backend = url.get_backend_name()
        if backend != "postgresql":
            raise ListenUrlError(f"{backend!r} is not PostgreSQL")
        # The asyncpg dialect's reading, whichever driver the URL names (postgresql://, say).
        asyncpg_url = url.set(drivername="postgresql+asyncpg")
        _, options = asyncpg_url.get_dialect()().create_connect_args(asyncpg_url)
    except (ArgumentError, ValueError) as exc:
        raise ListenUrlError(
            "AGENTRUN_DATABASE_LISTEN_URL (else AGENTRUN_DATABASE_URL) must be a PostgreSQL URL "
            f"such as postgresql://user:password@host:5432/agentrun: {exc}"
        ) from None
    arguments = {name: value for name, value in options.items() if name not in _ADAPTER_OPTIONS}
    return arguments, url.render_as_string(hide_password=True)


class EventListener:
    def __init__(self, database_url: str) -> None:
        """``database_url``: where to LISTEN (a ``ListenUrlError`` at once if it is no
        PostgreSQL URL); nothing connects before ``start``."""
        self._connect_arguments, self._shown_url = connect_arguments(database_url)
        # Keyed by channel and id: an execution's streams, a batch's.
        self._waiting: defaultdict[tuple[str, int], set[asyncio.Event]] = defaultdict(set)
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

    def subscribe(self, execution_id: int) -> contextlib.AbstractContextManager[asyncio.Event]:
        """An event set whenever ``execution_id`` may have new events (the caller clears it
        before each read). Subscribe before reading the log, so that nothing falls between."""
        return self._subscribe((NOTIFY_CHANNEL, execution_id))

    def subscribe_batch(self, batch_id: int) -> contextlib.AbstractContextManager[asyncio.Event]:
        """An event set whenever items of ``batch_id`` may have moved (as ``subscribe``)."""
        return self._subscribe((BATCH_NOTIFY_CHANNEL, batch_id))

    @contextlib.contextmanager
    def _subscribe(self, key: tuple[str, int]) -> Iterator[asyncio.Event]:
        woken = asyncio.Event()
        self._waiting[key].add(woken)
        try:
            yield woken
        finally:
            waiting = self._waiting[key]
            waiting.discard(woken)
            if not waiting:
                del self._waiting[key]

    def _notified(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        # '<id>'; '<execution id> <sequence>' before migration 0023.
        key = (channel, int(payload.split(" ", 1)[0]))
        for woken in self._waiting.get(key, ()):
            woken.set()

    def _wake_all(self) -> None:
        for waiting in self._waiting.values():
            for woken in waiting:
                woken.set()

    async def _listen(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(
                    **self._connect_arguments, timeout=CONNECT_TIMEOUT_SECONDS
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.warning(
                    "event listener: cannot connect to PostgreSQL at %s (%s)", self._shown_url, exc
                )
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
            await connection.add_listener(BATCH_NOTIFY_CHANNEL, self._notified)
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

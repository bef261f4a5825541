"""Riding out a PostgreSQL outage: the worker's writes are tried again, with backoff, for a while.

A run that has paid for its model calls must not lose its outcome because PostgreSQL restarted
meanwhile. Only outages are retried (``is_database_outage``: refused, timed out, connection
lost, server starting up); a write PostgreSQL refuses for its content fails at once.

Two ways to write: ``in_transaction`` (a session and a transaction: BEGIN … COMMIT) and
``in_one_statement`` (one statement on a connection in autocommit mode, which PostgreSQL
commits on its own). The worker's hot path (the claim, the trace, the outcome) is one statement
per step, so it takes the second: one round trip instead of three or more. Both run their
statements through SQLAlchemy, which decides what becomes of a connection whose statement
failed (invalidated when lost or interrupted; the whole pool when the server went away).
"""

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.database_errors import is_database_outage
from app.core.db import NEEDS_TRANSACTIONS

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 10.0

# Per engine: the same pool, its connections in autocommit mode (built once: building it costs
# about 0.1 ms).
_autocommit_engines: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = (
    weakref.WeakKeyDictionary()
)


def autocommit_engine(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The sessionmaker's engine, each statement committed on its own (no BEGIN, no COMMIT)."""
    engine: AsyncEngine = sessionmaker.kw["bind"]
    autocommit = _autocommit_engines.get(engine)
    if autocommit is None:
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        _autocommit_engines[engine] = autocommit
    return autocommit


async def in_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    retry_for: float,
    what: str,
) -> T:
    """Run ``work`` in a transaction of its own and answer what it answers. While PostgreSQL is
    unreachable, run it again (a fresh transaction each time) with backoff for up to
    ``retry_for`` seconds, then raise the last error."""

    async def attempt() -> T:
        async with sessionmaker() as session, session.begin():
            return await work(session)

    return await _retrying(attempt, retry_for=retry_for, what=what)


async def in_one_statement(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    retry_for: float,
    what: str,
) -> T:
    """Run ``work``, which executes ONE statement (atomic on its own; a second one would not be
    in the same transaction), on an autocommit connection; retried like ``in_transaction``,
    each try on a connection checked out for it."""
    engine: AsyncEngine = sessionmaker.kw["bind"]
    # Behind a pooler in transaction mode (app.core.db.create_engine): BEGIN … COMMIT.
    in_a_transaction = bool(engine.get_execution_options().get(NEEDS_TRANSACTIONS))
    autocommit = None if in_a_transaction else autocommit_engine(sessionmaker)

    async def attempt() -> T:
        if autocommit is None:
            async with engine.begin() as connection:
                return await work(connection)
        async with autocommit.connect() as connection:
            return await work(connection)

    return await _retrying(attempt, retry_for=retry_for, what=what)


async def _retrying(attempt: Callable[[], Awaitable[T]], *, retry_for: float, what: str) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    delay = FIRST_DELAY_SECONDS
    while True:
        try:
            return await attempt()
        except Exception as exc:
            remaining = deadline - loop.time()
            if not is_database_outage(exc) or remaining <= 0:
                raise
            pause = min(delay, remaining)
            logger.warning(
                "%s: PostgreSQL unavailable (%s: %s); trying again in %.1f s",
                what,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                pause,
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, MAX_DELAY_SECONDS)

"""Riding out a PostgreSQL outage: the worker's writes are tried again, with backoff, for a while.

A run that has paid for its model calls must not lose its outcome because PostgreSQL restarted
meanwhile. Only outages are retried (``is_database_outage``: refused, timed out, connection
lost, server starting up); a write PostgreSQL refuses for its content fails at once.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import is_database_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 10.0


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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    delay = FIRST_DELAY_SECONDS
    while True:
        try:
            async with sessionmaker() as session, session.begin():
                return await work(session)
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

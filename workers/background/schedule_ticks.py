"""The schedules' ticker: every worker runs the due ticks every
``AGENTRUN_SCHEDULE_POLL_SECONDS`` (a task of its own, beside the jobs). Workers racing for the
same tick are harmless: each tick is claimed once in PostgreSQL (app/schedules/ticks.py)."""

import asyncio
import logging

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.schedules.ticks import run_due_ticks

logger = logging.getLogger(__name__)

# One pass gives up after this long (a database that hangs); the next one starts over.
PASS_TIMEOUT_SECONDS = 60.0


async def keep_ticking_schedules(
    sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis, settings: Settings
) -> None:
    """From startup to shutdown; the first pass at once."""
    while True:
        try:
            async with asyncio.timeout(PASS_TIMEOUT_SECONDS):
                await run_due_ticks(sessionmaker, queue, settings)
        except Exception as exc:
            logger.warning("schedules: pass failed (%s: %s)", type(exc).__name__, exc)
        await asyncio.sleep(settings.schedule_poll_seconds)

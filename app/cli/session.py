"""How a command of ``agentrun`` (app/cli/commands.py) runs: one session it owns, and its
failures reported in one line."""

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker, owned_session
from app.core.errors import DomainError


class CommandError(Exception):
    """A failure to report on stderr with exit code 1, without a traceback."""


async def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[str]]) -> str:
    engine = create_engine(settings)
    try:
        # The command owns its transaction: committed once the work is done.
        async with owned_session(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[str]]) -> str:
    try:
        return asyncio.run(_with_session(settings, work))
    except DomainError as exc:
        raise CommandError("; ".join(str(value) for value in exc.body.values())) from None
    except (OSError, SQLAlchemyError) as exc:
        # Unreachable server, missing database or schema: one line, not a traceback.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandError(
            f"database error: {reason} (is the database up, and migrated with `agentrun migrate`?)"
        ) from None

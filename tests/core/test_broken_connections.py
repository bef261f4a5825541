"""A connection whose protocol state broke is never handed out again (app/core/db.py)."""

import asyncpg
import pytest
from sqlalchemy import event, text

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker


async def test_a_connection_whose_state_broke_is_replaced_not_reused(settings: Settings) -> None:
    engine = create_engine(settings, pool_size=1)
    sessionmaker = create_sessionmaker(engine)
    breaking = True

    def break_once(*_: object) -> None:
        # What asyncpg raises on a connection an operation was cancelled or cut on mid-way
        # (seen right after a PostgreSQL restart): its protocol cannot take a new statement.
        nonlocal breaking
        if breaking:
            breaking = False
            raise asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )

    try:
        async with sessionmaker() as session:
            before = await session.scalar(text("SELECT pg_backend_pid()"))
        event.listen(engine.sync_engine, "before_cursor_execute", break_once)
        with pytest.raises(asyncpg.InternalClientError):
            async with sessionmaker() as session:
                await session.execute(text("SELECT 1"))
        # The pool's one connection: a new one, not the broken one back.
        async with sessionmaker() as session:
            after = await session.scalar(text("SELECT pg_backend_pid()"))
    finally:
        await engine.dispose()

    assert after != before

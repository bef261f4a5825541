import asyncio
import time
import uuid

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from tests.conftest import SERVER_URL, alembic_config

# Longer than a migration of this schema ever takes unhindered: one still running then waits.
QUEUED_FOR_GOOD = 30


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    # `alembic check` raises when autogenerate would produce any operation.
    await asyncio.to_thread(command.check, alembic_config(database_url))


async def test_database_is_at_the_single_head_revision(
    engine: AsyncEngine, database_url: str
) -> None:
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    async with engine.connect() as connection:
        current = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()

    assert len(heads) == 1
    assert [row[0] for row in current] == heads


async def test_a_migration_behind_a_held_lock_fails_fast_instead_of_queueing() -> None:
    name = f"agentrun_locks_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(SERVER_URL)
    await server.execute(f'CREATE DATABASE "{name}"')
    url = SERVER_URL.rsplit("/", 1)[0]
    try:
        config = alembic_config(f"{url.replace('postgresql://', 'postgresql+asyncpg://')}/{name}")
        await asyncio.to_thread(command.upgrade, config, "head")
        # A long transaction reading every table (a report, a backup): whatever a migration
        # alters, and at least the version it records, waits for it.
        reader = await asyncpg.connect(f"{url}/{name}")
        await reader.execute("BEGIN")
        tables = await reader.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        for table in tables:
            await reader.execute(f'LOCK TABLE "{table[0]}" IN ACCESS SHARE MODE')
        await reader.execute("LOCK TABLE alembic_version IN SHARE MODE")
        started = time.perf_counter()
        try:
            with pytest.raises(DBAPIError, match="lock timeout"):
                await asyncio.wait_for(
                    asyncio.to_thread(command.downgrade, config, "-1"), QUEUED_FOR_GOOD
                )
            failed_after = time.perf_counter() - started
        finally:
            await reader.execute("ROLLBACK")
            await reader.close()
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()

    assert failed_after < Settings().migration_lock_timeout_seconds + 5

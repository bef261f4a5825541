import asyncio

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import alembic_config


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

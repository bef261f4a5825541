"""Alembic's environment. Rule for every migration: the previous release must keep working
against it during a rolling deploy (expand/contract: add nullable or filled columns now,
NOT NULL and drops only in a later release; deploy/README.md).

Migrations run under a ``lock_timeout``: a DDL statement waiting for a table lock behind a long
transaction would make every query on that table queue behind it (PostgreSQL grants locks in
order), so it gives up after ``AGENTRUN_MIGRATION_LOCK_TIMEOUT_SECONDS`` and the run fails,
changing nothing (one transaction); run it again later."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import get_settings
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    # An explicit URL (set by the tests or `agentrun migrate`) wins over the environment.
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def lock_timeout_ms() -> int:
    return max(1, round(get_settings().migration_lock_timeout_seconds * 1000))


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        # For this transaction only (a connection handed in by a caller keeps its settings).
        connection.execute(text(f"SET LOCAL lock_timeout = {lock_timeout_ms()}"))
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

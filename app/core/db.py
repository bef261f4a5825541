"""The declarative base, the engine and the session factory, and the transaction model.

One transaction model: every statement runs on an ``AsyncSession`` (SQLAlchemy Core or ORM),
inside the transaction the session began, and the session's owner alone commits or rolls
back. A request's owner is ``app.core.dependencies.get_session`` (commit when the endpoint
returns, rollback when it raises); the command line's is ``app.cli``; the worker's are its
own units of work. Services never commit. Work that must follow the commit, such as handing
a new execution to the queue, is registered with ``after_commit`` and run by the owner once
the commit succeeded (never after a rollback); what undoes an effect outside the database
made during the transaction (a file written) is registered with ``on_rollback`` and run when
the transaction does not commit, the commit itself failing included.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.core.config import Settings
from app.core.database_errors import is_broken_connection

# Stable constraint names, so that autogenerate never sees drift in names it made up itself.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


# An engine's execution option, set when its statements may not run outside a transaction
# (``database_prepared_statements`` off): the worker's one-statement writes then BEGIN and COMMIT.
NEEDS_TRANSACTIONS = "agentrun_needs_transactions"


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(
    settings: Settings,
    *,
    pool_size: int | None = None,
    statement_timeout_seconds: float | None = None,
) -> AsyncEngine:
    """The engine of a process: ``settings.database_pool_size`` connections (or ``pool_size``),
    on each of which PostgreSQL cancels a statement that runs longer than
    ``settings.database_statement_timeout_seconds`` (or ``statement_timeout_seconds``)."""
    timeout = (
        settings.database_statement_timeout_seconds
        if statement_timeout_seconds is None
        else statement_timeout_seconds
    )
    connect_args: dict[str, Any] = {"timeout": settings.database_connect_timeout_seconds}
    if timeout > 0:
        # Sent when the connection opens (no round trip of its own), so it holds for every
        # statement, SQLAlchemy's and any run on the driver's connection directly. A
        # statement cancelled for it fails with "canceling statement due to statement
        # timeout" (SQLSTATE 57014: an outage to the callers, who answer 503 or retry);
        # its connection stays usable. 0 sends nothing (PgBouncer refuses the parameter).
        connect_args["server_settings"] = {"statement_timeout": str(round(timeout * 1000))}
    if not settings.database_prepared_statements:
        # asyncpg's cache and SQLAlchemy's off, and unique names for what SQLAlchemy still
        # prepares (to read a result's columns): a pooler in transaction mode may run the next
        # transaction on another server connection, where a cached statement does not exist
        # and a reused name may already be taken.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
        connect_args["prepared_statement_cache_size"] = 0
    # SQLAlchemy prepares a statement, then runs it: in two exchanges, which a pooler in
    # transaction mode may send to two server connections unless a transaction holds one.
    options = {NEEDS_TRANSACTIONS: not settings.database_prepared_statements}
    engine = create_async_engine(
        settings.database_url,
        # A fixed set of connections, kept open: overflow connections are opened and closed
        # around single requests under load (a TLS handshake attempt and a server fork each),
        # which cost more than waiting a moment for a pooled one. A request that waits longer
        # than the pool timeout answers 503 (app/core/errors.py), like an unreachable server.
        pool_size=settings.database_pool_size if pool_size is None else pool_size,
        max_overflow=0,
        pool_timeout=settings.database_pool_timeout_seconds,
        # No ping before each checkout (three round trips): a connection that died with its
        # server fails its statement, the pool is invalidated, and callers answer 503 or retry.
        pool_pre_ping=False,
        connect_args=connect_args,
        execution_options=options,
    )
    event.listen(engine.sync_engine, "handle_error", _invalidate_broken_connection)
    return engine


def _invalidate_broken_connection(context: ExceptionContext) -> None:
    # SQLAlchemy invalidates a connection whose error its dialect calls a disconnect; asyncpg's
    # InternalClientError (the protocol state broke) is not one of those, so without this the
    # connection went back to the pool and failed every statement of the next users
    # ("cannot switch to state 12; another operation (2) is in progress"). Only it: the rest
    # of the pool is sound.
    if is_broken_connection(context.original_exception):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the same pool whose statements each commit by themselves (no BEGIN, no
    COMMIT: two round trips fewer), for requests that only read (``get_session``: GET and
    HEAD). Under READ COMMITTED each statement takes its own snapshot inside a transaction
    too, so such a request reads exactly what it would in one; what it may write is one
    statement (a token's last use), atomic by itself. Measured on the list: bench/README.md.

    Behind a pooler in transaction mode (``NEEDS_TRANSACTIONS``) they are transactions like
    any session's: outside one, a statement's prepare and its execution may reach two server
    connections, and the second fails (``prepared statement ... does not exist``)."""
    if engine.get_execution_options().get(NEEDS_TRANSACTIONS):
        return create_sessionmaker(engine)
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


_AFTER_COMMIT = "agentrun.after_commit"
_ON_ROLLBACK = "agentrun.on_rollback"


def after_commit(session: AsyncSession, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` once the session's owner has committed (dropped if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(work)


def on_rollback(session: AsyncSession, undo: Callable[[], object]) -> None:
    """Run ``undo`` if the session's transaction does not commit: its owner rolls it back, or
    the commit fails (dropped once the commit succeeded). For effects outside the database
    that only the transaction's rows account for, such as uploaded files."""
    session.info.setdefault(_ON_ROLLBACK, []).append(undo)


def _undo(session: AsyncSession) -> None:
    session.info.pop(_AFTER_COMMIT, None)
    for undo in reversed(session.info.pop(_ON_ROLLBACK, [])):
        undo()


async def commit(session: AsyncSession) -> None:
    """Commit the session's transaction, then run the work registered with ``after_commit``,
    in order: what a session's owner calls, never a service. Should the commit fail, what was
    registered with ``on_rollback`` runs."""
    try:
        await session.commit()
    except BaseException:
        _undo(session)
        raise
    session.info.pop(_ON_ROLLBACK, None)
    pending: list[Callable[[], Awaitable[object]]] = session.info.pop(_AFTER_COMMIT, [])
    for work in pending:
        await work()


async def rollback(session: AsyncSession) -> None:
    """Roll the transaction back, forget the work that was to follow its commit, and undo
    what was registered with ``on_rollback``."""
    _undo(session)
    await session.rollback()


@asynccontextmanager
async def owned_session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose owner is this block: committed when it ends (then its after-commit
    work runs), rolled back when it raises. A request's (``get_session``), a protocol call's
    and a command's."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await rollback(session)
            raise
        await commit(session)

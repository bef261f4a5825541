"""The statements run most often, straight on asyncpg: every request's, and the worker's.

Through SQLAlchemy one statement costs about 0.3 ms of CPU more than asyncpg's own 0.1 ms
(a cache key built from the statement, an execution context, result processing, a greenlet
switch), and an ORM query about 1 ms more; the token lookup, the execution reads, the list page
and the insert of a new execution are a few of them on every request, and were most of the
API's CPU; the claim, each write of the trace and the outcome are the worker's. They are
written with SQLAlchemy (so from the models), compiled once for asyncpg, and run on the driver
connection of a request's session or of a connection the worker checked out
(``workers.database``); everything else uses the ORM. Values are encoded as SQLAlchemy encodes
them (its bind processors: JSON is sent as ``json.dumps`` text, None as JSON ``null``); rows
come back as asyncpg records, JSON decoded by the codecs SQLAlchemy set on the connection.

A statement run here does not begin a transaction: on a session whose ORM statements began one
it runs in it, else (and always on the worker's connections) as a transaction of its own. So
each one must be correct alone; several rows written together are written by one statement
(a CTE).

One place (``driver``) decides what becomes of a connection whose statement failed: a
connection left in an unknown state (interrupted, lost, an error raised by asyncpg itself) is
invalidated, never reused; when the server is gone, so are the pool's other connections, as
SQLAlchemy does on a disconnect of its own statements (a restarted server closed them all).
"""

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]

# Where a statement runs: a session's connection, or a connection checked out from an engine.
Executor = AsyncSession | AsyncConnection


@dataclass(frozen=True)
class Statement:
    """SQL text with ``$n`` parameters, the names of the parameters in that order, the values
    of those the statement fixes itself (literals SQLAlchemy sends as parameters, encoded
    already), and how the values a caller gives are encoded, by parameter (only those that
    need it)."""

    sql: str
    params: tuple[str, ...]
    fixed: dict[str, Any]
    encoders: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        # A KeyError here is a parameter the caller forgot: never sent as NULL.
        if not self.encoders:
            return [values[name] if name in values else self.fixed[name] for name in self.params]
        arguments = []
        for name in self.params:
            if name in values:
                encode = self.encoders.get(name)
                value = values[name]
                arguments.append(value if encode is None else encode(value))
            else:
                arguments.append(self.fixed[name])
        return arguments


def compile_statement(statement: Executable) -> Statement:
    """Compile once (compiling costs ~0.4 ms): call this at import time or cache its result.

    An IN list the statement fixes (``status.in_([...])``) is rendered now; one whose values
    the caller gives cannot be compiled once (the SQL depends on its length)."""
    assert isinstance(statement, ClauseElement)
    compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
    assert not any(bind.required for bind in compiled.post_compile_params), (
        "an expanding parameter given at execution cannot be compiled once"
    )
    required = {name for name, bind in compiled.binds.items() if bind.required}
    expanded = compiled.construct_expanded_state(dict.fromkeys(required))
    params = tuple(expanded.positiontup or ())
    encoders: dict[str, Callable[[Any], Any]] = {}
    for name in params:
        # SQLAlchemy's bind processor for the parameter's type (an IN list's items: its own).
        encode = expanded.processors.get(name)
        if encode is None and name in compiled.binds:
            encode = compiled.binds[name].type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
        if encode is not None:
            encoders[name] = encode
    fixed = {
        name: encoders[name](value) if name in encoders else value
        for name, value in expanded.parameters.items()
        if name in params and name not in required
    }
    given = {name: encode for name, encode in encoders.items() if name in required}
    return Statement(expanded.statement, params, fixed, given)


@contextlib.asynccontextmanager
async def driver(executor: Executor) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection under ``executor``, for statements SQLAlchemy does not see: the
    connection is invalidated should one fail in a way that leaves its state unknown."""
    connection = await executor.connection() if isinstance(executor, AsyncSession) else executor
    # The pooled connection, as checked out (no greenlet switch needed).
    fairy = connection.sync_connection.connection if connection.sync_connection else None
    raw = None if fairy is None else fairy.driver_connection
    assert fairy is not None
    assert raw is not None
    try:
        yield raw
    except asyncpg.PostgresError as exc:
        # Sent by the server: the connection is fine, unless the server said it is going
        # away (or has closed it). Raised by asyncpg itself (no severity: a value it cannot
        # encode, such as an id beyond int32), the server is left mid-statement holding its
        # locks: not reused.
        from_server = getattr(exc, "severity", None) is not None
        if not from_server or isinstance(exc, asyncpg.PostgresConnectionError) or raw.is_closed():
            await _discard(connection, fairy, raw, exc)
        raise
    except BaseException as exc:
        # Lost, or interrupted mid-statement: the connection's state is unknown and it must
        # not go back to the pool (SQLAlchemy does not see statements run here).
        await _discard(connection, fairy, raw, exc)
        raise


async def _discard(
    connection: AsyncConnection,
    fairy: PoolProxiedConnection,
    raw: asyncpg.Connection,
    exc: BaseException,
) -> None:
    if raw.is_closed():
        # Lost (the server restarted, say): the pool's connections opened before it are
        # replaced as they are checked out, as SQLAlchemy does on a disconnect of its own
        # statements; else each would fail one statement in turn. (Pool._invalidate is the
        # private call SQLAlchemy makes there; no public one does the same: check it on
        # upgrades, tests/worker/test_database.py fails if it goes.)
        connection.sync_engine.pool._invalidate(fairy, exc, _checkin=False)
    await connection.invalidate(exc)


async def fetch(executor: Executor, statement: Statement, **values: Any) -> list[asyncpg.Record]:
    async with driver(executor) as connection:
        rows: list[asyncpg.Record] = await connection.fetch(
            statement.sql, *statement.arguments(values)
        )
        return rows


async def fetchrow(
    executor: Executor, statement: Statement, **values: Any
) -> asyncpg.Record | None:
    async with driver(executor) as connection:
        row: asyncpg.Record | None = await connection.fetchrow(
            statement.sql, *statement.arguments(values)
        )
        return row


async def fetchval(executor: Executor, statement: Statement, **values: Any) -> Any:
    async with driver(executor) as connection:
        return await connection.fetchval(statement.sql, *statement.arguments(values))


async def execute(executor: Executor, statement: Statement, **values: Any) -> str:
    """Run a statement that returns no rows; its status (``UPDATE 1``)."""
    async with driver(executor) as connection:
        status: str = await connection.execute(statement.sql, *statement.arguments(values))
        return status

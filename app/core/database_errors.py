"""What a PostgreSQL error means, decided in one place for the API and the worker.

Three kinds: an outage (the server cannot be reached or cannot serve us now: callers answer
503 or retry), bad data (a value a client sent does not fit its column: a 400), and a unique
violation (a concurrent writer stored the same key first: the caller answers what it stored).
Anything else is a bug. Errors come from SQLAlchemy (a ``DBAPIError`` whose ``orig`` carries
the SQLSTATE as ``sqlstate``/``pgcode``, whatever the driver) or, while connecting, from the
network or the pool. SQLAlchemy's asyncpg dialect translates every error of the server and of
the interface into its DBAPI exceptions except one, ``asyncpg.InternalClientError``, which
passes through raw: it is the one driver class named here.
"""

import socket

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes meaning "the server cannot serve us now": connection exception, insufficient
# resources (too many connections, disk full), operator intervention (shutdown, starting up),
# invalid authorization and a missing database (a misconfigured or restoring server).
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "28", "3D"})
# Class 22, data exception: a value the client sent does not fit its column (too long, out of
# int32 range, a NUL character in text). That is bad input, not a server fault.
DATA_EXCEPTION_CLASS = "22"
UNIQUE_VIOLATION = "23505"

# The exceptions that may mean an outage, for handlers registered by type.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeoutError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    asyncpg.InternalClientError,
)


def sqlstate(exc: BaseException) -> str:
    """The server's SQLSTATE code carried by SQLAlchemy's wrapper of the driver's error; empty
    when there is none."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    return ""


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says that PostgreSQL cannot be reached or cannot serve us right now."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | PoolTimeoutError):
        # Raised while connecting (refused, timed out, unknown host) or waiting for the pool.
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # The connection's protocol state broke, as when the server ended it while it sat in
        # the pool ("cannot switch to state …"); SQLAlchemy passes it through untranslated.
        return True
    if not isinstance(exc, DBAPIError):
        return False
    state = sqlstate(exc)
    if state[:2] == DATA_EXCEPTION_CLASS:
        return False
    return (
        exc.connection_invalidated
        or isinstance(exc, OperationalError | InterfaceError)
        or state[:2] in OUTAGE_SQLSTATE_CLASSES
    )


def is_broken_connection(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection's protocol state broke (asyncpg's "cannot switch to
    state …; another operation is in progress", as when an operation on it was cancelled or
    cut mid-way): the connection must not be used again."""
    return isinstance(exc, asyncpg.InternalClientError)


def is_bad_data(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a value for what it holds (SQLSTATE class 22)."""
    return sqlstate(exc)[:2] == DATA_EXCEPTION_CLASS


def is_unique_violation(exc: BaseException) -> bool:
    """Whether a row was refused because another holds the same unique key."""
    return isinstance(exc, IntegrityError) and sqlstate(exc) == UNIQUE_VIOLATION


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own error under SQLAlchemy's wrapper (asyncpg's, which says what the server
    said and nothing more; the wrapper's text adds the statement and its parameters), else
    ``exc``."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig.__cause__ or exc.orig
    return exc


def bad_data_message(exc: BaseException) -> str:
    """What the server said of the value it refused, in one line, for the client."""
    message = str(driver_error(exc)).splitlines()[0]
    return f"A value in the request cannot be stored: {message}"

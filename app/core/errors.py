"""Domain errors raised by services, and their mapping to the contract's HTTP error bodies.

Outages of PostgreSQL are mapped here too, in one place: whatever layer notices that the
database is unreachable, the client gets a 503 it can retry, never a 500 or a stack trace.
"""

import logging
import socket
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "Database unavailable, try again shortly."
# SQLSTATE classes meaning "the server cannot serve us now": connection exception, insufficient
# resources (too many connections, disk full), operator intervention (shutdown, starting up),
# invalid authorization and a missing database (a misconfigured or restoring server).
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "28", "3D"})
# Class 22, data exception: a value the client sent does not fit its column (too long, out of
# int32 range, a NUL character in text). That is bad input, not a server fault.
_DATA_EXCEPTION_CLASS = "22"


class DomainError(Exception):
    """Base class: ``status_code``, a JSON ``body`` in the contract's shape, optional headers."""

    status_code = 400

    def __init__(self, detail: str | dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.body: dict[str, Any] = {"detail": detail} if isinstance(detail, str) else detail
        self.headers = headers


class NotFound(DomainError):
    status_code = 404

    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(detail)


class Invalid(DomainError):
    status_code = 400


class PayloadTooLarge(DomainError):
    status_code = 413


class UnsupportedMediaType(DomainError):
    status_code = 415


class Conflict(DomainError):
    status_code = 409


class Unauthenticated(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class RateLimited(DomainError):
    status_code = 429


class Unavailable(DomainError):
    status_code = 503


def field_errors(errors: list[ErrorDetails] | Any, *, skip_sources: bool = False) -> dict[str, str]:
    """``{"a.b": "message"}`` from pydantic errors, the shape the contract's clients parse."""
    fields: dict[str, str] = {}
    for error in errors:
        location = list(error["loc"])
        if skip_sources and location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]
        path = ".".join(str(part) for part in location) or "detail"
        fields.setdefault(path, error["msg"])
    return fields


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = dict(exc.headers or {})
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Token"
    return JSONResponse(exc.body, status_code=exc.status_code, headers=headers or None)


def _sqlstate(exc: DBAPIError | asyncpg.PostgresError) -> str:
    # asyncpg's error (and SQLAlchemy's adapter of it) carries the server's SQLSTATE code.
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")
    return str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says that PostgreSQL cannot be reached or cannot serve us right now."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | PoolTimeoutError):
        # Raised while connecting (refused, timed out, unknown host) or waiting for the pool.
        return True
    # Raised by statements run on asyncpg directly (app/core/sql.py): a connection closed
    # under us, or an error the server sent.
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)
    if isinstance(exc, asyncpg.InternalClientError):
        # The connection's protocol state broke, as when the server ended it while it sat in
        # the pool ("cannot switch to state …"): app/core/sql.py drops it; the next is fresh.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return _sqlstate(exc)[:2] in _OUTAGE_SQLSTATE_CLASSES
    if not isinstance(exc, DBAPIError):
        return False
    state = _sqlstate(exc)
    if state[:2] == _DATA_EXCEPTION_CLASS:
        return False
    return (
        exc.connection_invalidated
        or isinstance(exc, OperationalError | InterfaceError)
        or state[:2] in _OUTAGE_SQLSTATE_CLASSES
    )


def _data_problem(exc: DBAPIError | asyncpg.PostgresError) -> str:
    if isinstance(exc, asyncpg.PostgresError):
        cause: BaseException | None = exc
    else:
        cause = exc.orig.__cause__ if exc.orig is not None else None
    message = str(cause or getattr(exc, "orig", None) or exc).splitlines()[0]
    return f"A value in the request cannot be stored: {message}"


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    if is_database_outage(exc):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return JSONResponse({"detail": DATABASE_UNAVAILABLE}, 503, headers={"Retry-After": "5"})
    if (
        isinstance(exc, DBAPIError | asyncpg.PostgresError)
        and _sqlstate(exc)[:2] == _DATA_EXCEPTION_CLASS
    ):
        return JSONResponse({"detail": _data_problem(exc)}, status_code=400)
    # A database error that is neither an outage nor bad input is a bug: log it whole, and
    # answer in JSON like every other error rather than with a bare text page.
    logger.error("unexpected database error", exc_info=exc)
    return JSONResponse({"detail": "Internal server error."}, status_code=500)


async def _request_validation_error(_: Request, exc: Exception) -> JSONResponse:
    # The contract answers 400 (not FastAPI's 422) with the offending fields named.
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error["type"] == "json_invalid" for error in errors):
        return JSONResponse({"detail": "JSON parse error: the body is not valid JSON."}, 400)
    return JSONResponse(field_errors(errors, skip_sources=True), status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in (
        DBAPIError,
        PoolTimeoutError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
    ):
        app.add_exception_handler(error, _database_error)

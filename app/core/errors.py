"""Domain errors raised by services, and their mapping to the contract's HTTP error bodies.

Database errors are answered here too, as ``app.core.database_errors`` classifies them:
whatever layer notices that the database is unreachable, the client gets a 503 it can retry,
never a 500 or a stack trace.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.database_errors import (
    DATABASE_ERRORS,
    bad_data_message,
    is_bad_data,
    is_database_outage,
)

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "Database unavailable, try again shortly."


class DomainError(Exception):
    """Base class: ``status_code``, a JSON ``body`` in the contract's shape, optional headers,
    and the ``description`` of its response in the OpenAPI document (``error_responses``)."""

    status_code = 400
    description = "Invalid request: the offending fields are named in the body."

    def __init__(self, detail: str | dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.body: dict[str, Any] = {"detail": detail} if isinstance(detail, str) else detail
        self.headers = headers


class NotFound(DomainError):
    status_code = 404
    description = "Not found."

    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(detail)


class Invalid(DomainError):
    status_code = 400


class PayloadTooLarge(DomainError):
    status_code = 413
    description = "Request body larger than the limit."


class UnsupportedMediaType(DomainError):
    status_code = 415
    description = "Unsupported media type."


class Conflict(DomainError):
    status_code = 409
    description = "Conflicts with what is stored."


class Unauthenticated(DomainError):
    status_code = 401
    description = "Missing or invalid token."


class Forbidden(DomainError):
    status_code = 403
    description = "Not an admin token."


class RateLimited(DomainError):
    status_code = 429
    description = "Rate limit exceeded: too many requests with this token this minute."


class Unavailable(DomainError):
    status_code = 503
    description = DATABASE_UNAVAILABLE


def error_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of routes that may raise ``errors``, as they describe
    themselves (a route adds its own wording where it says more)."""
    return {error.status_code: {"description": error.description} for error in errors}


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


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    if is_database_outage(exc):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return JSONResponse({"detail": DATABASE_UNAVAILABLE}, 503, headers={"Retry-After": "5"})
    if is_bad_data(exc):
        return JSONResponse({"detail": bad_data_message(exc)}, status_code=400)
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
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)

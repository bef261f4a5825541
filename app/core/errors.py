"""Domain errors raised by services, and their mapping to the contract's HTTP error bodies."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException


class DomainError(Exception):
    """Base class: ``status_code`` and a JSON ``body`` in the contract's shape."""

    status_code = 400

    def __init__(self, detail: str | dict[str, Any]) -> None:
        super().__init__(detail)
        self.body: dict[str, Any] = {"detail": detail} if isinstance(detail, str) else detail


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
    headers = {"WWW-Authenticate": "Token"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(exc.body, status_code=exc.status_code, headers=headers)


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

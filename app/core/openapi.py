"""The OpenAPI document as the API really answers.

FastAPI documents a 422 with its own ``HTTPValidationError`` body on every route that takes
input, but our handler answers invalid input with 400 and the offending fields named. Here the
422s go, and every operation lists the errors any request to it can meet: 400 where it takes
input, 401 where it needs a token, 413 and 429 on writes, 503 when PostgreSQL is down.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from app.core.errors import Invalid, PayloadTooLarge, RateLimited, Unauthenticated, Unavailable

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": '`{"detail": "<message>"}`, or for invalid input the offending fields '
    'mapped to their messages, e.g. `{"input": {"skus": "Input should be a valid list"}}`.',
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}

GENERIC_ERRORS: dict[str, dict[str, Any]] = {
    "400": {"description": Invalid.description},
    "401": {"description": Unauthenticated.description},
    "413": {"description": PayloadTooLarge.description},
    "429": {"description": RateLimited.description, "headers": RETRY_AFTER},
    "503": {"description": Unavailable.description, "headers": RETRY_AFTER},
}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _errors_of(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The generic error statuses a request to this operation can get."""
    takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
    authenticated = bool(operation.get("security"))
    errors = []
    if takes_input:
        errors.append("400")
    if authenticated:
        errors.append("401")
    if method == "post":
        errors += ["413", "429"] if authenticated else ["413"]
    if authenticated or path.startswith(("/api/", "/media/")):
        errors.append("503")
    return errors


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's 422s by the errors the API answers, in place."""
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _errors_of(path, method, operation):
                responses.setdefault(status, dict(GENERIC_ERRORS[status]))
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    body = response.setdefault("content", {}).setdefault("application/json", {})
                    body.setdefault("schema", {"$ref": "#/components/schemas/Error"})
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    # Only the 422s referred to them.
    for name in FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    return schema


def install_openapi(app: FastAPI, *refinements: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Serve the document FastAPI generates with the errors documented, then refined by each
    of ``refinements`` in turn (each may change the document in place)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_errors(generate())
            for refine in refinements:
                schema = refine(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

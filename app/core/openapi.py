"""The OpenAPI document as the API really answers.

FastAPI documents a 422 with its own ``HTTPValidationError`` body on every route that takes
input, but our handler answers invalid input with 400 and the offending fields named. Here the
422s go, and every operation lists the errors any request to it can meet: 400 where it takes
input, 401 where it needs a token, 413 and 429 on writes, 503 when PostgreSQL is down.

And schemas a route gives as they are (``Model.model_json_schema()`` in ``openapi_extra``) keep
their nested models under ``$defs``, referred to as ``#/$defs/Name``: read against the
document's root, where there is none. Those become the document's components.
"""

from collections.abc import Callable, Iterator
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


COMPONENTS = "#/components/schemas/"
DEFS = "#/$defs/"
# Keywords whose values are data (examples, defaults), never schemas to look into.
DATA_KEYWORDS = frozenset({"example", "examples", "default", "const", "enum"})
# Keywords whose values map names (a property's, a definition's) to schemas.
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """``schema`` and every schema within it (its properties, items, members, definitions)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for keyword, value in schema.items():
        if keyword in DATA_KEYWORDS:
            continue
        if keyword in SCHEMA_MAPS and isinstance(value, dict):
            for subschema in value.values():
                yield from _subschemas(subschema)
        elif isinstance(value, dict):
            yield from _subschemas(value)
        elif isinstance(value, list):
            for item in value:
                yield from _subschemas(item)


def _schemas_under(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema under a part of the OpenAPI document (a body's, a parameter's, a
    header's), with the schemas within it; the examples beside them are not looked into."""
    if isinstance(node, list):
        for item in node:
            yield from _schemas_under(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "schema":
                yield from _subschemas(value)
            elif key not in ("example", "examples"):
                yield from _schemas_under(value)


def _document_schemas(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema of the document: its component schemas', its operations', its webhooks'."""
    components: dict[str, Any] = document.get("components", {})
    for component in components.get("schemas", {}).values():
        yield from _subschemas(component)
    others = {key: value for key, value in components.items() if key != "schemas"}
    yield from _schemas_under([document.get("paths", {}), document.get("webhooks", {}), others])


def components_from_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Move every ``$defs`` in the document's schemas into its components, in place, and
    point their ``#/$defs/Name`` references there (a discriminator's mapping too).

    A name two different schemas would take is refused (``ValueError`` as the document is
    built): neither is overwritten, nor silently kept. The same schema twice is one component.
    """
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    subschemas = list(_document_schemas(schema))
    moved: list[tuple[str, Any]] = []
    for subschema in subschemas:
        moved += subschema.pop("$defs", {}).items()
    referenced: set[str] = set()
    for subschema in subschemas:
        reference = subschema.get("$ref")
        if isinstance(reference, str) and reference.startswith(DEFS):
            referenced.add(reference.removeprefix(DEFS))
            subschema["$ref"] = COMPONENTS + reference.removeprefix(DEFS)
        mapping = subschema.get("discriminator", {}).get("mapping", {})
        for value, target in mapping.items():
            if isinstance(target, str) and target.startswith(DEFS):
                referenced.add(target.removeprefix(DEFS))
                mapping[value] = COMPONENTS + target.removeprefix(DEFS)
    # Compared once every reference points at the components, as the existing ones do.
    for name, definition in moved:
        if components.setdefault(name, definition) != definition:
            raise ValueError(
                f"Two different schemas would be the OpenAPI document's component {name!r}: "
                "rename one of the models."
            )
    if missing := sorted(referenced - components.keys()):
        raise ValueError(f"Schemas refer to {missing} in $defs, which no $defs holds.")
    return schema


def install_openapi(app: FastAPI, *refinements: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Serve the document FastAPI generates with the errors documented, then refined by each
    of ``refinements`` in turn (each may change the document in place), with the ``$defs``
    of its schemas made components last (whichever step put them there)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_errors(generate())
            for refine in refinements:
                schema = refine(schema)
            app.openapi_schema = components_from_defs(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

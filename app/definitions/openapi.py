"""The OpenAPI document typed per execution type, from the definitions registered at startup.

The start endpoint's JSON body becomes a union discriminated on ``execution_key``: one member
per installed type (a plugin's too), whose ``input`` is that type's ``Input`` model as a named
component schema. Each type also gets a component for its result and one for its execution
(``<Type>Execution``: the execution's JSON with that type's ``input`` and ``result``), which a
generated client uses to read a polled execution typed. The multipart form keeps its schema.
"""

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.definitions.base import ExecutionDefinition

COMPONENTS = "#/components/schemas/"
START_PATH_SUFFIX = "/agents/{agent_id}/agentic-executions/"
EXECUTION_COMPONENT = "ExecutionOut"


def type_name(definition: ExecutionDefinition) -> str:
    """``catalog-enrichment`` -> ``CatalogEnrichment``: the prefix of the type's components."""
    words = definition.key.replace("_", "-").replace(".", "-").split("-")
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def _model_components(
    definitions: Sequence[ExecutionDefinition],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each model's reference (by model) and every schema they need (by component name)."""
    models: list[tuple[type[BaseModel], Any]] = []
    for definition in definitions:
        models.append((definition.Input, "validation"))
        if definition.Output is not None:
            models.append((definition.Output, "serialization"))
    references, top = models_json_schema(
        list(dict.fromkeys(models)), ref_template=COMPONENTS + "{model}"
    )
    by_model: dict[type[BaseModel], dict[str, Any]] = {}
    for (model, _), reference in references.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            by_model[model] = reference
    needed: dict[str, dict[str, Any]] = top.get("$defs", {})
    return by_model, needed


def _start_member(definition: ExecutionDefinition, input_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"Start {definition.key}",
        "type": "object",
        "description": f"Starts a `{definition.key}` execution ({definition.name}, "
        f"version {definition.version}).",
        "properties": {
            "execution_key": {"type": "string", "const": definition.key},
            "input": input_ref,
            "limits": {
                "anyOf": [{"$ref": f"{COMPONENTS}Limits"}, {"type": "null"}],
                "description": "Usage limits of this execution (the agent's apply too).",
            },
        },
        "required": ["execution_key"],
    }


def _typed_execution(
    generic: dict[str, Any],
    definition: ExecutionDefinition,
    input_ref: dict[str, Any],
    result_ref: dict[str, Any] | None,
) -> dict[str, Any]:
    typed = copy.deepcopy(generic)
    typed["title"] = f"{type_name(definition)}Execution"
    typed["description"] = f"An execution of `{definition.key}`."
    properties = typed["properties"]
    properties["execution_key"] = {"type": "string", "const": definition.key}
    properties["input"] = input_ref
    result = properties["result"]
    properties["result"] = {
        "description": result.get("description", ""),
        **({"anyOf": [result_ref, {"type": "null"}]} if result_ref is not None else {}),
    }
    return typed


def document_execution_types(
    schema: dict[str, Any], definitions: Sequence[ExecutionDefinition]
) -> dict[str, Any]:
    """Type the document in place by the given definitions."""
    if not definitions:
        return schema
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    by_model, needed = _model_components(definitions)
    for name, component in needed.items():
        components.setdefault(name, component)
    members: list[dict[str, Any]] = []
    mapping: dict[str, str] = {}
    generic = components.get(EXECUTION_COMPONENT)
    for definition in definitions:
        name = type_name(definition)
        input_ref = by_model[definition.Input]
        result_ref = None if definition.Output is None else by_model[definition.Output]
        components[f"{name}StartRequest"] = _start_member(definition, input_ref)
        reference = f"{COMPONENTS}{name}StartRequest"
        members.append({"$ref": reference})
        mapping[definition.key] = reference
        if generic is not None:
            components[f"{name}Execution"] = _typed_execution(
                generic, definition, input_ref, result_ref
            )
    for path, item in schema.get("paths", {}).items():
        operation = item.get("post")
        if path.endswith(START_PATH_SUFFIX) and operation is not None:
            body = operation["requestBody"]["content"]["application/json"]
            body["schema"] = {
                "oneOf": members,
                "discriminator": {"propertyName": "execution_key", "mapping": mapping},
            }
    return schema

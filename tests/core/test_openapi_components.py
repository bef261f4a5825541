"""A schema a route gives as pydantic writes it (``Model.model_json_schema()`` in
``openapi_extra``) has its nested models under ``$defs``, referred to as ``#/$defs/Name``: the
document makes them its components, so that the references resolve (app/core/openapi.py)."""

import enum
import json
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

import app.main
from app.core.config import Settings
from app.core.openapi import install_openapi
from app.main import create_app

COMPONENTS = "#/components/schemas/"


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Line(BaseModel):
    sku: str
    colour: Colour


class Order(BaseModel):
    lines: list[Line]
    gift: Line | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Adoption(BaseModel):
    pet: Cat | Dog = Field(discriminator="kind")


def body(model: type[BaseModel], **media_type: Any) -> dict[str, Any]:
    schema = {"schema": model.model_json_schema(), **media_type}
    return {"requestBody": {"required": True, "content": {"application/json": schema}}}


def document_of(*bodies: dict[str, Any]) -> dict[str, Any]:
    """The document of an app with a POST route a body."""
    api = FastAPI()
    for number, extra in enumerate(bodies):

        @api.post(f"/{number}/", openapi_extra=extra)
        async def route() -> None:
            return None

    install_openapi(api)
    document: dict[str, Any] = api.openapi()
    return document


def request_schema(document: dict[str, Any], path: str = "/0/") -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def test_a_bodys_nested_models_become_components() -> None:
    document = document_of(body(Order))

    order = request_schema(document)
    assert order["properties"]["lines"]["items"] == {"$ref": f"{COMPONENTS}Line"}
    assert order["properties"]["gift"]["anyOf"][0] == {"$ref": f"{COMPONENTS}Line"}
    schemas = document["components"]["schemas"]
    assert schemas["Line"]["properties"]["colour"] == {"$ref": f"{COMPONENTS}Colour"}
    assert schemas["Colour"]["enum"] == ["red", "blue"]
    assert "$defs" not in json.dumps(document)
    validate(document)


def test_a_model_given_twice_is_one_component() -> None:
    document = document_of(body(Order), body(Line), body(Order))

    assert request_schema(document, "/2/") == request_schema(document, "/0/")
    assert request_schema(document, "/1/")["properties"]["colour"] == {
        "$ref": f"{COMPONENTS}Colour"
    }
    assert {"Line", "Colour"} <= document["components"]["schemas"].keys()


def test_a_model_of_a_components_name_that_differs_is_refused() -> None:
    class Line(BaseModel):  # Another model of the name the module's Line has.
        sku: str
        quantity: int

    class Basket(BaseModel):
        lines: list[Line]

    with pytest.raises(ValueError, match="component 'Line'"):
        document_of(body(Order), body(Basket))


def test_a_discriminators_mapping_points_at_the_components() -> None:
    document = document_of(body(Adoption))

    pet = request_schema(document)["properties"]["pet"]
    assert pet["discriminator"]["mapping"] == {
        "cat": f"{COMPONENTS}Cat",
        "dog": f"{COMPONENTS}Dog",
    }
    assert pet["oneOf"] == [{"$ref": f"{COMPONENTS}Cat"}, {"$ref": f"{COMPONENTS}Dog"}]
    validate(document)


def test_examples_are_left_as_they_are() -> None:
    # A JSON schema as an example value (structured-task's output_schema is one).
    example = {"output_schema": {"$defs": {"Line": {}}, "$ref": "#/$defs/Line"}}

    document = document_of(body(Line, example=example))

    assert (
        document["paths"]["/0/"]["post"]["requestBody"]["content"]["application/json"]["example"]
        == example
    )
    assert "Line" not in document["components"]["schemas"]


def test_the_apps_document_has_no_defs(settings: Settings) -> None:
    document = create_app(settings).openapi()

    assert "$defs" not in json.dumps(document)
    submit = document["paths"]["/api/agents/{agent_id}/agentic-execution-batches/"]["post"]
    batch = submit["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["items"]["items"] == {"$ref": f"{COMPONENTS}BatchItem"}
    assert batch["properties"]["limits"]["anyOf"][0] == {"$ref": f"{COMPONENTS}Limits"}
    assert document["components"]["schemas"]["BatchItem"]["title"] == "BatchItem"


def test_without_definitions_the_start_bodys_limits_are_the_component(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Untyped by any definition, the start body is StartExecutionRequest's schema as it is.
    monkeypatch.setattr(app.main, "all_definitions", list)

    document = create_app(settings).openapi()

    start = document["paths"]["/api/agents/{agent_id}/agentic-executions/"]["post"]
    schema = start["requestBody"]["content"]["application/json"]["schema"]
    assert schema["title"] == "StartExecutionRequest"
    assert schema["properties"]["limits"]["anyOf"][0] == {"$ref": f"{COMPONENTS}Limits"}
    assert "$defs" not in json.dumps(document)
    validate(document)

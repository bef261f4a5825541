from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from app.catalog.models import Dataset, Product
from app.core.errors import Invalid, field_errors
from app.core.json_input import NOT_FINITE, json_problem
from app.core.schemas import Timestamp

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Spring catalog"])


class DatasetOut(BaseModel):
    id: int = Field(examples=[1])
    name: str = Field(examples=["Spring catalog"])
    created_at: Timestamp


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(examples=[3])


class MemberOut(BaseModel):
    dataset: int = Field(examples=[1])
    user: int = Field(examples=[3])


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku = Field(description="Unique within the dataset.", examples=["SKU-001"])
    name: str = Field(default="", max_length=300, examples=["Linen shirt"])
    description: str = Field(default="", examples=["A breathable shirt for warm days."])
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form attributes (a JSON object).",
        examples=[{"color": "white", "size": ["S", "M", "L"]}],
    )


class ProductOut(BaseModel):
    id: int = Field(examples=[10])
    sku: str = Field(examples=["SKU-001"])
    name: str = Field(examples=["Linen shirt"])
    description: str
    properties: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp


_product_list = TypeAdapter(list[ProductIn])


def _check_properties(items: list[ProductIn], max_depth: int, prefixed: bool) -> None:
    """400 for properties nesting deeper than ``max_depth`` (past ~255 levels no list of the
    dataset's products could be answered) or holding a non-finite number."""
    for index, item in enumerate(items):
        problem = json_problem(item.properties, max_depth)
        if problem is not None:
            path, message = problem
            field = f"{index}.properties" if prefixed else "properties"
            if message == NOT_FINITE and path:
                field = f"{field}.{path}"
            raise Invalid({field: message})


def parse_products(body: Any, max_depth: int) -> ProductIn | list[ProductIn]:
    """One product object or a list of them.

    Validated here rather than as a union body parameter so that errors name the field
    (``sku``, ``2.sku``) instead of the union member pydantic tried.
    """
    try:
        if isinstance(body, list):
            products = _product_list.validate_python(body)
            _check_properties(products, max_depth, prefixed=True)
            return products
        product = ProductIn.model_validate(body)
    except ValidationError as exc:
        raise Invalid(field_errors(exc.errors())) from None
    _check_properties([product], max_depth, prefixed=False)
    return product


_product_schema = ProductIn.model_json_schema()
PRODUCTS_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "Products",
                    "anyOf": [_product_schema, {"type": "array", "items": _product_schema}],
                },
                "examples": {
                    "one": {"value": {"sku": "SKU-001", "name": "Linen shirt"}},
                    "many": {
                        "value": [
                            {"sku": "SKU-001", "name": "Linen shirt"},
                            {"sku": "SKU-002", "properties": {"color": "blue"}},
                        ]
                    },
                },
            }
        },
    }
}


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(id=dataset.id, name=dataset.name, created_at=dataset.created_at)


def product_out(product: Product) -> ProductOut:
    return ProductOut.model_validate(product, from_attributes=True)

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.auth.dependencies import AdminUser, CurrentUser
from app.catalog import service
from app.catalog.schemas import (
    PRODUCTS_OPENAPI,
    DatasetCreate,
    DatasetOut,
    MemberCreate,
    MemberOut,
    ProductOut,
    dataset_out,
    parse_products,
    product_out,
)
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Forbidden, error_responses
from app.core.ids import RowId
from app.core.json_input import parse_json_body

router = APIRouter(tags=["datasets"])

# 401 is documented on every route that takes a token (app/core/openapi.py).
ADMIN_ONLY = error_responses(Forbidden)
DATASET_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such dataset, or not visible to you.",
        "content": {"application/json": {"example": {"detail": "Dataset not found."}}},
    }
}


@router.post(
    "/datasets/",
    status_code=status.HTTP_201_CREATED,
    summary="Create a dataset",
    description="A dataset holds a product catalog; its members may use the agents on it.",
    responses={
        **ADMIN_ONLY,
        400: {
            "description": "Invalid body (fields named).",
            "content": {"application/json": {"example": {"name": "Field required"}}},
        },
    },
)
async def create_dataset(body: DatasetCreate, session: SessionDep, _: AdminUser) -> DatasetOut:
    return dataset_out(await service.create_dataset(session, body.name))


@router.get(
    "/datasets/",
    summary="List datasets",
    description="The datasets you are a member of (all of them for admins), by id.",
)
async def list_datasets(session: SessionDep, user: CurrentUser) -> list[DatasetOut]:
    return [dataset_out(d) for d in await service.list_visible_datasets(session, user)]


@router.post(
    "/datasets/{dataset_id}/members/",
    status_code=status.HTTP_201_CREATED,
    summary="Add a member to a dataset",
    description=(
        "Members see the dataset, its products and its agents, and may run the agents. "
        "Idempotent: 201 when the user is added, 200 when he already was a member."
    ),
    responses={
        200: {"description": "Already a member; nothing changed.", "model": MemberOut},
        **ADMIN_ONLY,
        400: {"description": "Invalid body (fields named)."},
        404: {
            "description": "No such dataset or user.",
            "content": {"application/json": {"example": {"detail": "User not found."}}},
        },
    },
)
async def add_member(
    dataset_id: RowId, body: MemberCreate, response: Response, session: SessionDep, _: AdminUser
) -> MemberOut:
    if not await service.add_member(session, dataset_id, body.user_id):
        response.status_code = status.HTTP_200_OK
    return MemberOut(dataset=dataset_id, user=body.user_id)


@router.post(
    "/datasets/{dataset_id}/products/",
    status_code=status.HTTP_201_CREATED,
    summary="Add products to a dataset",
    description=(
        "Send one product object or a list of them; the answer has the same shape. "
        "`sku` is unique within the dataset: if any sku is repeated in the request or already "
        "in the dataset, the request is rejected and nothing is written."
    ),
    openapi_extra=PRODUCTS_OPENAPI,
    response_model=ProductOut | list[ProductOut],
    responses={
        **ADMIN_ONLY,
        400: {
            "description": "Invalid product (fields named; `0.sku` is the first item's sku) "
            "or a duplicate sku.",
            "content": {
                "application/json": {"example": {"sku": "Already in this dataset: 'SKU-001'."}}
            },
        },
        **DATASET_NOT_FOUND,
    },
)
async def create_products(
    dataset_id: RowId, request: Request, session: SessionDep, settings: SettingsDep, _: AdminUser
) -> ProductOut | list[ProductOut]:
    body = parse_json_body(await request.body(), settings.max_json_depth)
    parsed = parse_products(body, settings.max_json_depth)
    items = parsed if isinstance(parsed, list) else [parsed]
    created = await service.create_products(session, dataset_id, items)
    products = [product_out(p, settings.max_json_depth) for p in created]
    return products if isinstance(parsed, list) else products[0]


@router.get(
    "/datasets/{dataset_id}/products/",
    summary="List a dataset's products",
    description="Every product of the dataset, by sku. For the dataset's members and admins.",
    responses={**DATASET_NOT_FOUND},
)
async def list_products(
    dataset_id: RowId, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> list[ProductOut]:
    dataset = await service.get_visible_dataset(session, user, dataset_id)
    products = await service.list_products(session, dataset.id)
    return [product_out(p, settings.max_json_depth) for p in products]

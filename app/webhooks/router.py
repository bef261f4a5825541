from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.auth.dependencies import CurrentUser
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import NotFound
from app.core.ids import RowId
from app.core.query import EMPTY_IS_NONE
from app.webhooks import service
from app.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.webhooks.schemas import (
    AttemptOut,
    CreateEndpoint,
    DeliveryOut,
    DeliveryPage,
    EndpointOut,
    EndpointPage,
    EndpointWithSecret,
    UpdateEndpoint,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"description": "No such endpoint (or delivery), or not yours."}
}
INVALID_PAGE: dict[int | str, dict[str, object]] = {404: {"description": "Invalid page."}}

PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint, from_attributes=True)


def with_secret(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret(**endpoint_out(endpoint).model_dump(), secret=secret)


def delivery_out(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event=delivery.event,
        webhook_id=delivery.message_id,
        execution_id=delivery.execution_id,
        batch_id=delivery.batch_id,
        status=DeliveryStatus(delivery.status),
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        payload=delivery.payload,
        attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
    )


def _links(request: Request, page: int, total: int, size: int) -> tuple[str | None, str | None]:
    pages = max(1, -(-total // size))
    if page > pages:
        raise NotFound("Invalid page.")
    following = str(request.url.include_query_params(page=page + 1)) if page < pages else None
    previous = None if page == 1 else str(request.url.include_query_params(page=page - 1))
    return following, previous


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook endpoint",
    description="Receives the chosen events of the executions you can see (admins: all), of "
    "one agent when `agent_id` is given. The answer holds the signing `secret`, this once "
    "only. URLs resolving to loopback, private, link-local or metadata addresses are refused.",
    responses={400: {"description": "A refused URL, an unknown event or agent."}},
)
async def create_endpoint(
    body: CreateEndpoint, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> EndpointWithSecret:
    endpoint, secret = await service.create_endpoint(
        session, settings, user, url=body.url, events=body.events, agent_id=body.agent_id
    )
    return with_secret(endpoint, secret)


@router.get("/", summary="List your webhook endpoints", responses=INVALID_PAGE)
async def list_endpoints(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    page: PageNumber = 1,
) -> EndpointPage:
    size = settings.page_size
    total, endpoints = await service.list_endpoints(
        session, user, offset=(page - 1) * size, limit=size
    )
    following, previous = _links(request, page, total, size)
    return EndpointPage(
        count=total,
        next=following,
        previous=previous,
        results=[endpoint_out(e) for e in endpoints],
    )


@router.get("/{endpoint_id}/", summary="Read a webhook endpoint", responses=NOT_FOUND)
async def read_endpoint(endpoint_id: RowId, session: SessionDep, user: CurrentUser) -> EndpointOut:
    return endpoint_out(await service.get_endpoint(session, user, endpoint_id))


@router.patch(
    "/{endpoint_id}/",
    summary="Change a webhook endpoint",
    description="`url`, `events`, `enabled` (enabling again clears the reason it was disabled).",
    responses={**NOT_FOUND, 400: {"description": "A refused URL or an unknown event."}},
)
async def update_endpoint(
    endpoint_id: RowId,
    body: UpdateEndpoint,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> EndpointOut:
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    updated = await service.update_endpoint(
        session, settings, endpoint, url=body.url, events=body.events, enabled=body.enabled
    )
    return endpoint_out(updated)


@router.delete(
    "/{endpoint_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint",
    responses=NOT_FOUND,
)
async def delete_endpoint(endpoint_id: RowId, session: SessionDep, user: CurrentUser) -> Response:
    await service.delete_endpoint(session, await service.get_endpoint(session, user, endpoint_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret/",
    summary="Rotate the signing secret",
    description="Answers the new secret (this once). For 24 hours deliveries carry a signature "
    "by the old secret beside the new one.",
    responses=NOT_FOUND,
)
async def rotate_secret(
    endpoint_id: RowId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> EndpointWithSecret:
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    return with_secret(*await service.rotate_secret(session, settings, endpoint))


@router.get(
    "/{endpoint_id}/deliveries/",
    summary="List an endpoint's deliveries",
    description="Newest first, each with its attempts (time, response code, duration, error, "
    "the first KiB of the response's body).",
    responses={404: {"description": "No such endpoint, not yours, or an invalid page."}},
)
async def list_deliveries(
    endpoint_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    status: Annotated[DeliveryStatus | None, EMPTY_IS_NONE, Query()] = None,
    event: Annotated[WebhookEvent | None, EMPTY_IS_NONE, Query()] = None,
    page: PageNumber = 1,
) -> DeliveryPage:
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    size = settings.page_size
    total, rows = await service.list_deliveries(
        session,
        endpoint,
        service.DeliveryFilters(status=status, event=event),
        offset=(page - 1) * size,
        limit=size,
    )
    following, previous = _links(request, page, total, size)
    return DeliveryPage(
        count=total,
        next=following,
        previous=previous,
        results=[delivery_out(d, attempts) for d, attempts in rows],
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver/",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again",
    description="With the same `webhook-id`, from the first step of the retry schedule.",
    responses=NOT_FOUND,
)
async def redeliver(
    endpoint_id: RowId, delivery_id: RowId, session: SessionDep, user: CurrentUser
) -> DeliveryOut:
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    delivery, attempts = await service.redeliver(session, endpoint, delivery_id)
    return delivery_out(delivery, attempts)

"""Webhook endpoints of the signed-in user, their recent deliveries, and redelivering one."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.agents.service import list_visible_agents
from app.console.web import ConsoleRoute, ConsoleUser, checked_form, redirect, render, text_field
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Invalid
from app.core.ids import RowId
from app.webhooks import service
from app.webhooks.models import WebhookEndpoint, WebhookEvent

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

RECENT_DELIVERIES = 25
# More endpoints than a person keeps: the page shows the first ones.
ENDPOINTS_SHOWN = 100


@router.get("/webhooks/", name="console_webhooks")
async def endpoints_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    return await _endpoints(request, session, user)


async def _endpoints(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    total, endpoints = await service.list_endpoints(session, user, offset=0, limit=ENDPOINTS_SHOWN)
    return render(
        request,
        "webhooks.html",
        {
            "user": user,
            "total": total,
            "endpoints": endpoints,
            "events": [event.value for event in WebhookEvent],
            "agents": await list_visible_agents(session, user),
            "errors": errors or {},
        },
        status_code,
    )


@router.post("/webhooks/", name="console_webhook_create")
async def create(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    form = await checked_form(request)
    chosen = [value for value in form.getlist("events") if isinstance(value, str)]
    agent = text_field(form, "agent_id")
    try:
        events = [WebhookEvent(value) for value in chosen]
        if not events:
            raise Invalid({"events": "Choose at least one event."})
        endpoint, secret = await service.create_endpoint(
            session,
            settings,
            user,
            url=text_field(form, "url"),
            events=events,
            agent_id=int(agent) if agent.isdigit() else None,
        )
    except ValueError:
        return await _endpoints(
            request, session, user, errors={"events": "Unknown event."}, status_code=400
        )
    except Invalid as error:
        messages = {
            key: "; ".join(value) if isinstance(value, list) else str(value)
            for key, value in error.body.items()
        }
        return await _endpoints(request, session, user, errors=messages, status_code=400)
    # The secret is shown this once, as the API's answer to the creation shows it.
    return await _endpoint(request, session, user, endpoint, secret=secret)


async def _endpoint(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    endpoint: WebhookEndpoint,
    *,
    secret: str | None = None,
) -> Response:
    total, deliveries = await service.list_deliveries(
        session, endpoint, service.DeliveryFilters(), offset=0, limit=RECENT_DELIVERIES
    )
    return render(
        request,
        "webhook.html",
        {
            "user": user,
            "endpoint": endpoint,
            "secret": secret,
            "total": total,
            "deliveries": deliveries,
        },
    )


@router.get("/webhooks/{endpoint_id}/", name="console_webhook")
async def endpoint_page(
    endpoint_id: RowId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    return await _endpoint(request, session, user, endpoint)


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver", name="console_redeliver")
async def redeliver(
    endpoint_id: RowId,
    delivery_id: RowId,
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
) -> Response:
    await checked_form(request)
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    await service.redeliver(session, endpoint, delivery_id)
    return redirect(request, "console_webhook", endpoint_id=endpoint_id)


@router.post("/webhooks/{endpoint_id}/enabled", name="console_webhook_enabled")
async def set_enabled(
    endpoint_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    form = await checked_form(request)
    endpoint = await service.get_endpoint(session, user, endpoint_id)
    await service.update_endpoint(
        session, settings, endpoint, url=None, events=None, enabled=form.get("enabled") == "true"
    )
    return redirect(request, "console_webhook", endpoint_id=endpoint_id)


@router.post("/webhooks/{endpoint_id}/rotate", name="console_webhook_rotate")
async def rotate(
    endpoint_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    await checked_form(request)
    endpoint, secret = await service.rotate_secret(
        session, settings, await service.get_endpoint(session, user, endpoint_id)
    )
    return await _endpoint(request, session, user, endpoint, secret=secret)


@router.post("/webhooks/{endpoint_id}/delete", name="console_webhook_delete")
async def delete(
    endpoint_id: RowId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    await checked_form(request)
    await service.delete_endpoint(session, await service.get_endpoint(session, user, endpoint_id))
    return redirect(request, "console_webhooks")

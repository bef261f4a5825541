"""Webhook endpoints of a user: create, read, change, delete, rotate the secret; their
deliveries, and redelivering one."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Invalid, NotFound
from app.webhooks import repository
from app.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.webhooks.signing import new_secret
from app.webhooks.stored_secrets import seal_secret
from app.webhooks.urls import RefusedUrl, check_url

# How long a rotated secret still signs deliveries beside the new one.
PREVIOUS_SECRET_VALIDITY = timedelta(hours=24)


async def _checked_url(url: str, settings: Settings) -> str:
    try:
        await check_url(url, allow_private_networks=settings.webhook_allow_private_networks)
    except RefusedUrl as exc:
        raise Invalid({"url": [str(exc)]}) from None
    return url


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    user: User,
    *,
    url: str,
    events: Sequence[WebhookEvent],
    agent_id: int | None,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret (stored encrypted; the answer shows it this once)."""
    await _checked_url(url, settings)
    if agent_id is not None and not await repository.agent_usable_by(session, user, agent_id):
        raise Invalid({"agent_id": [f"No agent {agent_id} you may use."]})
    secret = new_secret()
    endpoint = WebhookEndpoint(
        user_id=user.id,
        url=url,
        events=sorted({event.value for event in events}),
        agent_id=agent_id,
        enabled=True,
        secret_encrypted=seal_secret(settings.keyring, secret),
    )
    session.add(endpoint)
    # Its id and defaults for the answer; the request commits.
    await session.flush()
    return endpoint, secret


async def list_endpoints(
    session: AsyncSession, user: User, *, offset: int, limit: int
) -> tuple[int, Sequence[WebhookEndpoint]]:
    total = await repository.count_endpoints(session, user.id)
    return total, await repository.list_endpoints(session, user.id, offset=offset, limit=limit)


async def get_endpoint(session: AsyncSession, user: User, endpoint_id: int) -> WebhookEndpoint:
    """The caller's own endpoint, else 404 (an admin's endpoints are his own too)."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.user_id != user.id or endpoint.execution_id is not None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    endpoint: WebhookEndpoint,
    *,
    url: str | None,
    events: Sequence[WebhookEvent] | None,
    enabled: bool | None,
) -> WebhookEndpoint:
    if url is not None:
        endpoint.url = await _checked_url(url, settings)
    if events is not None:
        endpoint.events = sorted({event.value for event in events})
    if enabled is not None:
        endpoint.enabled = enabled
        if enabled:
            # Enabled again by its owner: the failing streak starts over.
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    await repository.delete_endpoint(session, endpoint.id)


async def rotate_secret(
    session: AsyncSession, settings: Settings, endpoint: WebhookEndpoint
) -> tuple[WebhookEndpoint, str]:
    """A new secret (answered this once); the old one keeps signing beside it for 24 hours."""
    secret = new_secret()
    sealed = seal_secret(settings.keyring, secret)
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = utcnow() + PREVIOUS_SECRET_VALIDITY
    endpoint.secret_encrypted = sealed
    await session.flush()
    return endpoint, secret


@dataclass(frozen=True)
class DeliveryFilters:
    status: DeliveryStatus | None = None
    event: WebhookEvent | None = None


async def list_deliveries(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    filters: DeliveryFilters,
    *,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[tuple[WebhookDelivery, list[WebhookAttempt]]]]:
    """The endpoint's deliveries, newest first, each with its attempts (oldest first)."""
    where = [WebhookDelivery.endpoint_id == endpoint.id]
    if filters.status is not None:
        where.append(WebhookDelivery.status == filters.status.value)
    if filters.event is not None:
        where.append(WebhookDelivery.event == filters.event.value)
    total = await repository.count_deliveries(session, where)
    deliveries = await repository.list_deliveries(session, where, offset=offset, limit=limit)
    attempts = await repository.attempts_of(session, [d.id for d in deliveries])
    return total, [(d, attempts[d.id]) for d in deliveries]


async def redeliver(
    session: AsyncSession, endpoint: WebhookEndpoint, delivery_id: int
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """Send a delivery again (same ``webhook-id``), from the first step of the retry schedule."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("Delivery not found.")
    delivery.status = DeliveryStatus.PENDING.value
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    await session.flush()
    attempts = await repository.attempts_of(session, [delivery.id])
    return delivery, attempts[delivery.id]

"""The statements of the webhooks API on the request's session (its owner commits)."""

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.service import visible_agents
from app.auth.models import User
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


async def agent_usable_by(session: AsyncSession, user: User, agent_id: int) -> bool:
    agents = visible_agents(user).subquery()
    return await session.scalar(select(agents.c.id).where(agents.c.id == agent_id)) is not None


def _users_own(user_id: int) -> ColumnElement[bool]:
    # An execution's endpoints (A2A push notification configs) are managed over A2A.
    return and_(WebhookEndpoint.user_id == user_id, WebhookEndpoint.execution_id.is_(None))


async def count_endpoints(session: AsyncSession, user_id: int) -> int:
    mine = _users_own(user_id)
    return await session.scalar(select(func.count()).where(mine)) or 0


async def list_endpoints(
    session: AsyncSession, user_id: int, *, offset: int, limit: int
) -> Sequence[WebhookEndpoint]:
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(_users_own(user_id))
        .order_by(WebhookEndpoint.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return rows.all()


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


async def count_deliveries(session: AsyncSession, where: Sequence[ColumnElement[bool]]) -> int:
    query = select(func.count()).select_from(WebhookDelivery).where(*where)
    return await session.scalar(query) or 0


async def list_deliveries(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], *, offset: int, limit: int
) -> Sequence[WebhookDelivery]:
    """Newest first."""
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(*where)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return rows.all()


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[int]
) -> dict[int, list[WebhookAttempt]]:
    """The attempts of each delivery, oldest first."""
    attempts: dict[int, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.id)
        )
        for attempt in rows:
            attempts[attempt.delivery_id].append(attempt)
    return attempts


async def execution_endpoints(
    session: AsyncSession, execution_id: int, user_id: int
) -> Sequence[WebhookEndpoint]:
    """The user's endpoints of one execution (an A2A task's push notification configs), oldest
    first."""
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.execution_id == execution_id, WebhookEndpoint.user_id == user_id)
        .order_by(WebhookEndpoint.id)
    )
    return rows.all()

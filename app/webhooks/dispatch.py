"""Turning the status events of the log (the outbox) into deliveries, one per matching endpoint.

Run by the workers (``workers.webhook_delivery``). Each batch is one transaction: the events
are locked (``SKIP LOCKED``: workers share the work), their deliveries inserted (at most one an
event and endpoint) and the events marked dispatched; a worker killed in between leaves them
undispatched for the next pass. Endpoints receive the events of executions their owner can see
(an admin: all), of their agent only when they name one.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import any_, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.db import utcnow
from app.events.models import EventType, ExecutionEvent
from app.events.stream import execution_in_status
from app.executions import repository
from app.executions.models import CANCELLED, AgenticExecution, ExecutionStatus
from app.executions.router import execution_out
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

BATCH = 100


def webhook_event(payload: dict[str, Any]) -> WebhookEvent | None:
    """The webhook event a status event is, if any (``pending`` is none)."""
    status = payload.get("status")
    if status == ExecutionStatus.IN_PROGRESS:
        return WebhookEvent.STARTED
    if status == ExecutionStatus.FINISHED:
        return WebhookEvent.FINISHED
    if status == ExecutionStatus.FAILED:
        if payload.get("failure_code") == CANCELLED:
            return WebhookEvent.CANCELLED
        return WebhookEvent.FAILED
    return None


def message_id(execution_id: int, sequence: int) -> str:
    # The event's identity: the same on every attempt and redelivery.
    return f"msg_{execution_id}_{sequence}"


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _subscribers(
    session: AsyncSession, execution: AgenticExecution, kind: WebhookEvent
) -> list[int]:
    query = (
        select(WebhookEndpoint.id)
        .join(User, User.id == WebhookEndpoint.user_id)
        .where(
            WebhookEndpoint.enabled.is_(True),
            literal(kind.value) == any_(WebhookEndpoint.events),
            or_(WebhookEndpoint.agent_id.is_(None), WebhookEndpoint.agent_id == execution.agent_id),
            or_(User.is_admin.is_(True), User.id == execution.user_id),
            User.is_active.is_(True),
        )
    )
    return list((await session.scalars(query)).all())


async def dispatch_events(session: AsyncSession, root_path: str) -> int:
    """Dispatch one batch of undispatched events, in one transaction; how many were."""
    async with session.begin():
        rows = (
            await session.execute(
                select(ExecutionEvent, AgenticExecution)
                .join(AgenticExecution, AgenticExecution.id == ExecutionEvent.execution_id)
                .where(ExecutionEvent.dispatched_at.is_(None))
                .order_by(ExecutionEvent.created_at)
                .limit(BATCH)
                .with_for_update(of=ExecutionEvent, skip_locked=True)
            )
        ).all()
        now = utcnow()
        for event, execution in rows:
            event.dispatched_at = now
            kind = None if event.type != EventType.STATUS else webhook_event(event.payload or {})
            if kind is None:
                continue
            endpoints = await _subscribers(session, execution, kind)
            if not endpoints:
                continue
            shown = await repository.get_execution(session, execution.id)
            assert shown is not None
            assert event.payload is not None
            data = execution_out(execution_in_status(shown, event.payload), root_path)
            body = {
                "type": kind.value,
                "timestamp": _timestamp(event.created_at),
                "data": data.model_dump(mode="json"),
            }
            await session.execute(
                insert(WebhookDelivery)
                .values(
                    [
                        {
                            "endpoint_id": endpoint_id,
                            "execution_id": execution.id,
                            "event_sequence": event.sequence,
                            "event": kind.value,
                            "message_id": message_id(execution.id, event.sequence),
                            "payload": body,
                            "status": DeliveryStatus.PENDING.value,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                        for endpoint_id in endpoints
                    ]
                )
                .on_conflict_do_nothing()
            )
    return len(rows)

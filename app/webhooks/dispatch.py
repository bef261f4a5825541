"""Turning the status events of the log (the outbox) into deliveries, one per matching endpoint.

Run by the workers (``workers.background.webhook_delivery``). Each batch is one transaction: the
events are locked (``SKIP LOCKED``: workers share the work), their deliveries inserted (at most one
an event and endpoint) and the events marked dispatched; a worker killed in between leaves them
undispatched for the next pass. Endpoints receive the events of executions their owner can see (an
admin: all), of their agent only when they name one, of their execution only when they are an A2A
task's push notification config (whose deliveries carry the A2A task instead).

Only status events written while an endpoint that could receive them was enabled wait here
(one of all executions, or of theirs): else PostgreSQL writes them dispatched (migration 0023),
so a service without webhooks pays no pass over them.
So an endpoint receives the events written after it was stored (or enabled), the transaction
that stores it included (an A2A task stored with its push notification config).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from a2a.types.a2a_pb2 import StreamResponse
from google.protobuf import json_format  # type: ignore[import-untyped]
from sqlalchemy import Row, any_, exists, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.db import utcnow
from app.events.models import ExecutionEvent
from app.events.stream import execution_in_status
from app.executions import repository
from app.executions.models import CANCELLED, AgenticExecution, ExecutionStatus
from app.executions.router import execution_out
from app.protocols.a2a.tasks import task_of
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


def timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def subscribers(
    session: AsyncSession,
    user_id: int,
    execution_id: int | None,
    agent_id: int,
    kind: WebhookEvent,
) -> Sequence[Row[int, bool]]:
    """The endpoints that receive the event: their id, and whether each is an A2A push
    notification config. ``execution_id`` None: an event of no execution (a batch's), which
    only endpoints of all executions receive."""
    query = (
        select(
            WebhookEndpoint.id, WebhookEndpoint.a2a_push_config_encrypted.is_not(None).label("a2a")
        )
        .join(User, User.id == WebhookEndpoint.user_id)
        .where(
            WebhookEndpoint.enabled.is_(True),
            literal(kind.value) == any_(WebhookEndpoint.events),
            or_(WebhookEndpoint.agent_id.is_(None), WebhookEndpoint.agent_id == agent_id),
            (
                WebhookEndpoint.execution_id.is_(None)
                if execution_id is None
                else or_(
                    WebhookEndpoint.execution_id.is_(None),
                    WebhookEndpoint.execution_id == execution_id,
                )
            ),
            or_(User.is_admin.is_(True), User.id == user_id),
            User.is_active.is_(True),
        )
    )
    return (await session.execute(query)).all()


async def dispatch_events(session: AsyncSession, root_path: str) -> int:
    """Dispatch one batch of undispatched events, in one transaction; how many were.

    Read with Core (no ORM objects): every status change of every execution passes here.
    """
    async with session.begin():
        rows = (
            await session.execute(
                select(
                    ExecutionEvent.execution_id,
                    ExecutionEvent.sequence,
                    ExecutionEvent.payload,
                    ExecutionEvent.created_at,
                    AgenticExecution.user_id,
                    AgenticExecution.agent_id,
                )
                .join(AgenticExecution, AgenticExecution.id == ExecutionEvent.execution_id)
                .where(ExecutionEvent.dispatched_at.is_(None))
                .order_by(ExecutionEvent.created_at)
                .limit(BATCH)
                .with_for_update(of=ExecutionEvent.__table__, skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        now = utcnow()
        await session.execute(
            update(ExecutionEvent)
            .where(
                tuple_(ExecutionEvent.execution_id, ExecutionEvent.sequence).in_(
                    [(row.execution_id, row.sequence) for row in rows]
                )
            )
            .values(dispatched_at=now),
            execution_options={"synchronize_session": False},
        )
        if await session.scalar(select(exists().where(WebhookEndpoint.enabled.is_(True)))):
            for row in rows:
                await _deliveries_of(session, row, root_path, now)
    return len(rows)


async def _deliveries_of(
    session: AsyncSession, event: Row[Any], root_path: str, now: datetime
) -> None:
    """The deliveries of one (status) event, one per endpoint that receives it."""
    kind = webhook_event(event.payload or {})
    if kind is None:
        return
    endpoints = await subscribers(session, event.user_id, event.execution_id, event.agent_id, kind)
    if not endpoints:
        return
    shown = await repository.get_execution(session, event.execution_id)
    assert shown is not None
    in_status = execution_in_status(shown, event.payload)
    body = {
        "type": kind.value,
        "timestamp": timestamp(event.created_at),
        "data": execution_out(in_status, root_path).model_dump(mode="json"),
    }
    # What an A2A client's push notification receiver reads: a StreamResponse, the task.
    a2a_body = None
    if any(endpoint.a2a for endpoint in endpoints):
        a2a_body = json_format.MessageToDict(StreamResponse(task=task_of(in_status)))
    await session.execute(
        insert(WebhookDelivery)
        .values(
            [
                {
                    "endpoint_id": endpoint.id,
                    "execution_id": event.execution_id,
                    "event_sequence": event.sequence,
                    "event": kind.value,
                    "message_id": message_id(event.execution_id, event.sequence),
                    "payload": a2a_body if endpoint.a2a else body,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for endpoint in endpoints
            ]
        )
        .on_conflict_do_nothing()
    )

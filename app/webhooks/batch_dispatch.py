"""Turning batches that finished into ``batch.finished`` deliveries, one per endpoint that
receives it (``app.webhooks.dispatch`` does the same for executions' status events).

The outbox is the batch row itself: ``finished_at`` set and ``finished_dispatched_at`` not
(both written by the trigger of migration 0028 in the transaction of the last item's end;
written dispatched when no endpoint of all executions was enabled). Each pass is one
transaction: the batches are locked (``SKIP LOCKED``: workers share the work), their
deliveries inserted (at most one a batch and endpoint) and the batches marked dispatched.
An endpoint receives the batches its owner can see (an admin: all), of its agent when it
names one; an A2A push config (an endpoint of one execution) receives none.
"""

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.batches import repository
from app.batches.models import AgenticExecutionBatch
from app.batches.schemas import BatchOut
from app.core.db import utcnow
from app.webhooks.dispatch import BATCH, subscribers, timestamp
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent


def batch_message_id(batch_id: int) -> str:
    # The event's identity: the same on every attempt and redelivery.
    return f"msg_batch_{batch_id}"


def shown_batch(batch: repository.BatchRow, root_path: str) -> BatchOut:
    """The batch as a webhook shows it: its links as paths (no request tells the host)."""
    base = f"{root_path}/api"
    return BatchOut.of(
        batch,
        results=f"{base}/agentic-execution-batches/{batch['id']}/results/",
        executions=f"{base}/agentic-executions/?batch_id={batch['id']}",
    )


async def dispatch_batch_events(session: AsyncSession, root_path: str) -> int:
    """Dispatch one pass of finished batches, in one transaction; how many were."""
    async with session.begin():
        ids = (
            await session.scalars(
                select(AgenticExecutionBatch.id)
                .where(
                    AgenticExecutionBatch.finished_at.is_not(None),
                    AgenticExecutionBatch.finished_dispatched_at.is_(None),
                )
                .order_by(AgenticExecutionBatch.finished_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return 0
        now = utcnow()
        await session.execute(
            update(AgenticExecutionBatch)
            .where(AgenticExecutionBatch.id.in_(ids))
            .values(finished_dispatched_at=now),
            execution_options={"synchronize_session": False},
        )
        if not await session.scalar(select(exists().where(WebhookEndpoint.enabled.is_(True)))):
            return len(ids)
        for batch_id in ids:
            batch = await repository.get_batch(session, batch_id)
            assert batch is not None
            endpoints = await subscribers(
                session, batch["user_id"], None, batch["agent_id"], WebhookEvent.BATCH_FINISHED
            )
            if not endpoints:
                continue
            body = {
                "type": WebhookEvent.BATCH_FINISHED.value,
                "timestamp": timestamp(batch["finished_at"]),
                "data": shown_batch(batch, root_path).model_dump(mode="json"),
            }
            await session.execute(
                insert(WebhookDelivery)
                .values(
                    [
                        {
                            "endpoint_id": endpoint.id,
                            "execution_id": None,
                            "batch_id": batch_id,
                            "event_sequence": 1,
                            "event": WebhookEvent.BATCH_FINISHED.value,
                            "message_id": batch_message_id(batch_id),
                            "payload": body,
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
    return len(ids)

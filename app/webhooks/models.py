"""Webhook endpoints of users, the deliveries of execution events to them, and every attempt.

A delivery is made by the dispatcher (``workers.background.webhook_delivery``) from a status event
of the execution's log (``app.events.models``), which is the outbox: written in the transaction of
the status change. ``message_id`` (``webhook-id``) stays the same across the attempts of a delivery
and its redeliveries, so that a receiver can drop duplicates.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class WebhookEvent(enum.StrEnum):
    STARTED = "execution.started"
    FINISHED = "execution.finished"
    FAILED = "execution.failed"
    CANCELLED = "execution.cancelled"
    # Every item of a batch ended (app/batches): sent once, the batch as its data.
    BATCH_FINISHED = "batch.finished"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(default=True)
    # Why it was disabled by the service (failing for too long); None when a user did it.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The signing secret, encrypted (app/webhooks/stored_secrets.py): shown once, at creation.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # The secret before the last rotation, still signing beside the new one until it expires.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    # The first failed attempt since the last success: past the limit, the endpoint is disabled.
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set for an endpoint of one execution only: an A2A task's push notification config
    # (app/protocols/a2a/push.py), managed over A2A and not listed by /api/webhooks/.
    execution_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="CASCADE"), index=True
    )
    # That config as its user set it (id, url, token, authentication) and the headers its
    # deliveries carry (the token and Authorization it asks for), as JSON, encrypted.
    a2a_push_config_encrypted: Mapped[str | None] = mapped_column(Text)


_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in DeliveryStatus)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        # One delivery an event and endpoint: a dispatcher that runs twice adds none.
        UniqueConstraint("endpoint_id", "execution_id", "event_sequence"),
        # One batch.finished delivery a batch and endpoint.
        Index(
            "ix_webhook_deliveries_endpoint_batch",
            "endpoint_id",
            "batch_id",
            unique=True,
            postgresql_where="batch_id IS NOT NULL",
        ),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
        # The deliveries due, for the workers.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where="status = 'pending'",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # The execution whose status event it delivers; null for a batch's event (``batch_id``).
    execution_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="CASCADE")
    )
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("agentic_execution_batches.id", ondelete="CASCADE")
    )
    # The event's sequence in its execution's log (1 for a batch's one event).
    event_sequence: Mapped[int]
    event: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(64))
    # The body sent, fixed when the delivery is made: {"type", "timestamp", "data"}.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    response_status: Mapped[int | None]
    duration_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
    # The first KiB of the response's body.
    response_body: Mapped[str | None] = mapped_column(Text)

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.schemas import Timestamp
from app.webhooks.models import DeliveryStatus, WebhookEvent

Events = Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WebhookEvent))]


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, examples=["https://example.com/agentrun-hook"])
    events: Events = Field(examples=[["execution.finished", "execution.failed"]])
    agent_id: int | None = Field(
        default=None, description="Only executions of this agent; all visible ones if absent."
    )


class UpdateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    events: Events | None = None
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    agent_id: int | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the service disabled it (failing for 5 days); null otherwise."
    )
    created_at: Timestamp


class EndpointWithSecret(EndpointOut):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: shown this once only.",
    )


class EndpointPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[EndpointOut]


class AttemptOut(BaseModel):
    attempted_at: Timestamp
    response_status: int | None
    duration_ms: int
    error: str | None
    response_body: str | None = Field(description="The first KiB of the response's body.")


class DeliveryOut(BaseModel):
    id: int
    event: str
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    execution_id: int | None = Field(description="The execution of the event; null for a batch's.")
    batch_id: int | None = Field(description="The batch of a `batch.finished` event; else null.")
    status: DeliveryStatus
    next_attempt_at: Timestamp | None
    created_at: Timestamp
    payload: dict[str, Any]
    attempts: list[AttemptOut]


class DeliveryPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[DeliveryOut]

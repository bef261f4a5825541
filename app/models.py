"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from app.agents.models import Agent
from app.auth.models import ApiToken, User
from app.batches.models import AgenticExecutionBatch
from app.catalog.models import Dataset, DatasetMember, Product
from app.conversations.models import Conversation, ConversationFile, Message
from app.core.db import Base
from app.events.models import ExecutionEvent
from app.executions.models import AgenticExecution
from app.journal.models import ExecutionStep
from app.schedules.models import AgenticExecutionSchedule, ScheduleTick
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Agent",
    "AgenticExecution",
    "AgenticExecutionBatch",
    "AgenticExecutionSchedule",
    "ApiToken",
    "Base",
    "Conversation",
    "ConversationFile",
    "Dataset",
    "DatasetMember",
    "ExecutionEvent",
    "ExecutionStep",
    "Message",
    "Product",
    "ScheduleTick",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class Agent(Base):
    """A configured agent: an agent type (which execution definitions it offers) on a dataset."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    agent_type: Mapped[str] = mapped_column(String(100))
    file_upload: Mapped[bool] = mapped_column(default=False)
    # provider, model name, base URL, temperature: see app.agents.schemas.ModelSettings
    model_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # Usage limits of each execution of the agent (app/budgets/limits.py); null: none.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    deleted: Mapped[bool] = mapped_column(default=False)
    # Set with ``deleted`` by DELETE /api/agents/{id}/; its executions stay readable.
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

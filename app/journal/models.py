"""The journal of an execution's durable steps: each model response and tool result, as the
run produced it, so that the next attempt replays them instead of doing them again.

A row is one unit of the pydantic-ai run (``workers/run/durability.py``): a model response (``kind``
``model``, ``call_id`` empty) or a tool call (``kind`` ``tool``, the model's tool call id), both
under the run step (``ctx.run_step``) of the model response they belong to. ``result`` is the
unit's payload as pydantic-ai's durable JSON codec dumps it (a ``ModelResponse`` round-trips
through ``ModelMessagesTypeAdapter``); null while a tool declared at-most-once has started
without reporting a result.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow
from app.core.nul_free import NulFreeJSONB, NulFreeString


class StepKind(enum.StrEnum):
    MODEL = "model"
    TOOL = "tool"


_KIND_VALUES = ", ".join(f"'{kind.value}'" for kind in StepKind)


class ExecutionStep(Base):
    __tablename__ = "execution_steps"
    __table_args__ = (CheckConstraint(f"kind IN ({_KIND_VALUES})", name="kind"),)

    execution_id: Mapped[int] = mapped_column(
        ForeignKey("agentic_executions.id", ondelete="CASCADE"), primary_key=True
    )
    # The run step (1, 2, …: one per model request) of the model response, or of the response
    # that asked for the tool call.
    step: Mapped[int] = mapped_column(primary_key=True)
    # The tool call id the model gave; "" for the model response itself.
    call_id: Mapped[str] = mapped_column(NulFreeString(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The tool's name, or the model's.
    name: Mapped[str] = mapped_column(NulFreeString(200))
    # The attempt that wrote the row.
    attempt: Mapped[int]
    # sha256 of the tool call's arguments, or of the request the response answered: a replay
    # uses a row only for the same call (the run took the same path).
    args_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[Any | None] = mapped_column(NulFreeJSONB)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

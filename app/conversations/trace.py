"""Appending an execution's trace (model turns, tool calls, validator verdicts) to its
conversation, as the run goes, so that reading the conversation shows the run so far."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Message
from app.core.db import utcnow

# Column widths of Message.
_ROLE, _TOOL_NAME, _TOOL_CALL_ID = 32, 200, 200


@dataclass(frozen=True)
class TraceEntry:
    role: str
    content: str = ""
    tool_name: str | None = None
    tool_call_id: str | None = None
    payload: dict[str, Any] | None = None
    created_at: datetime | None = None


def _without_nul(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    # PostgreSQL refuses NUL in text and jsonb; a PDF's text or a model's output may carry one.
    if payload is None:
        return None
    encoded = json.dumps(payload, default=str)
    if "\\u0000" not in encoded:
        return payload
    cleaned: dict[str, Any] = json.loads(encoded.replace("\\u0000", ""))
    return cleaned


def _truncated(value: str | None, width: int) -> str | None:
    return None if value is None else value[:width]


async def append_trace(
    session: AsyncSession, conversation_id: int, entries: Sequence[TraceEntry]
) -> None:
    """Add the entries as messages, in order (ids grow in the order given)."""
    if not entries:
        return
    now = utcnow()
    # One multi-row INSERT, without the ORM's unit of work: the worker writes the trace of
    # every step of every run, so this path is kept cheap.
    await session.execute(
        insert(Message),
        [
            {
                "conversation_id": conversation_id,
                "role": entry.role[:_ROLE],
                "content": entry.content.replace("\x00", ""),
                "tool_name": _truncated(entry.tool_name, _TOOL_NAME),
                "tool_call_id": _truncated(entry.tool_call_id, _TOOL_CALL_ID),
                "payload": _without_nul(entry.payload),
                "created_at": entry.created_at or now,
            }
            for entry in entries
        ],
    )

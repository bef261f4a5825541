"""Appending an execution's trace (model turns, tool calls, validator verdicts) to its
conversation, as the run goes, so that reading the conversation shows the run so far."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, bindparam, column, insert, select
from sqlalchemy import values as values_list

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


def _truncated(value: str | None, width: int) -> str | None:
    return None if value is None else value[:width]


# The columns of a trace entry, in the order of ``trace_values``.
TRACE_COLUMNS = (
    "conversation_id",
    "role",
    "content",
    "tool_name",
    "tool_call_id",
    "payload",
    "created_at",
)
# Past this many entries, the worker writes in several statements (a statement takes at most
# 32767 parameters).
ROWS_PER_STATEMENT = 500


@functools.lru_cache(maxsize=128)
def trace_insert(rows: int, only_if: ColumnElement[bool] | None = None) -> Insert:
    """One INSERT of ``rows`` messages, its values bound by ``trace_values`` (``<column>_<row>``);
    with ``only_if``, the rows are inserted only if it holds (the attempt writing them still
    holds its execution: ``app.executions.transitions.attempt_holds``).

    Built once per shape: building a statement costs more CPU than running it, and the worker
    writes the trace of every step of every run. The rows go in the order given (ids grow in
    that order). The worker also sends it inside a larger statement (a CTE of the UPDATE that
    stores the outcome). NUL characters are replaced by the columns' types (app/core/nul_free).
    """
    table = cast(Table, Message.__table__)
    rows_bound = [
        tuple(bindparam(f"{name}_{row}", type_=table.c[name].type) for name in TRACE_COLUMNS)
        for row in range(rows)
    ]
    if only_if is None:
        return insert(table).values(
            [dict(zip(TRACE_COLUMNS, row, strict=True)) for row in rows_bound]
        )
    entries = values_list(
        *(column(name, table.c[name].type) for name in TRACE_COLUMNS), name="entries"
    )
    return insert(table).from_select(
        list(TRACE_COLUMNS), select(entries.data(rows_bound)).where(only_if)
    )


def trace_values(conversation_id: int, entries: Sequence[TraceEntry]) -> dict[str, Any]:
    """The parameters of ``trace_insert(len(entries))``."""
    now = utcnow()
    values: dict[str, Any] = {}
    for row, entry in enumerate(entries):
        values[f"conversation_id_{row}"] = conversation_id
        values[f"role_{row}"] = entry.role[:_ROLE]
        values[f"content_{row}"] = entry.content
        values[f"tool_name_{row}"] = _truncated(entry.tool_name, _TOOL_NAME)
        values[f"tool_call_id_{row}"] = _truncated(entry.tool_call_id, _TOOL_CALL_ID)
        values[f"payload_{row}"] = entry.payload
        values[f"created_at_{row}"] = entry.created_at or now
    return values

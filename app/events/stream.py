"""An execution's event log as Server-Sent Events.

Each event's ``id:`` is its sequence number within the execution. ``status`` events carry the
execution as ``GET /api/agentic-executions/{id}/`` shows it in that status, ``trace`` events
the trace entry as the conversation's ``messages`` show it. The stream sends the log after the
given sequence, then follows it live (woken by ``app.events.listener``), and ends after the
terminal status, which is always the last event of an execution.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations.models import Message
from app.conversations.schemas import MessageOut
from app.core.errors import Invalid
from app.events.listener import EventListener
from app.events.models import EventType, ExecutionEvent
from app.events.repository import events_after
from app.executions.models import TERMINAL_STATUSES, ExecutionStatus
from app.executions.rows import ExecutionRow
from app.executions.schemas import execution_out

# The headers of a stream response: no cache, no proxy buffering (the API's and the console's).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def last_event_id_of(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return 0
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise Invalid({"Last-Event-ID": ["Expected the id of an event of this stream (1, 2, …)."]})
    return int(raw)


# Events read from the log at a time (a long run's trace is read in several batches).
BATCH = 200
KEEP_ALIVE = b": keep-alive\n\n"


def execution_in_status(execution: ExecutionRow, payload: dict[str, Any]) -> ExecutionRow:
    """The execution's row as it was in a status event: the columns that change with the status
    from the event, the others (fixed at creation) from the row."""
    finished_at = payload.get("finished_at")
    return dataclasses.replace(
        execution,
        status=ExecutionStatus(payload["status"]),
        result=payload.get("result"),
        failure_code=payload.get("failure_code"),
        failure_explanation=payload.get("failure_explanation"),
        finished_at=None if finished_at is None else datetime.fromisoformat(finished_at),
        # Events written before usage was part of the payload show none.
        usage=payload.get("usage"),
    )


def frame(sequence: int, event: str, data: str) -> bytes:
    # JSON has no raw newlines, so the data is one `data:` line.
    return f"id: {sequence}\nevent: {event}\ndata: {data}\n\n".encode()


class EventStream:
    """The stream of one execution for one client."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        listener: EventListener,
        execution: ExecutionRow,
        *,
        after: int,
        root_path: str,
        keep_alive_seconds: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.listener = listener
        self.execution = execution
        self.after = after
        self.root_path = root_path
        self.keep_alive_seconds = keep_alive_seconds

    def _render(self, event: ExecutionEvent, message: Message | None) -> tuple[bytes, bool]:
        """The event's frame, and whether it ends the stream (a terminal status)."""
        if event.type == EventType.STATUS:
            assert event.payload is not None
            row = execution_in_status(self.execution, event.payload)
            data = execution_out(row, self.root_path).model_dump_json()
            return frame(event.sequence, "status", data), row.status in TERMINAL_STATUSES
        assert message is not None
        data = MessageOut.model_validate(message, from_attributes=True).model_dump_json()
        return frame(event.sequence, "trace", data), False

    async def _read(self) -> Sequence[tuple[ExecutionEvent, Message | None]]:
        # A session a read: an idle stream holds no connection.
        async with self.sessionmaker() as session:
            return await events_after(session, self.execution.id, self.after, BATCH)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        already_terminal = self.execution.status in TERMINAL_STATUSES
        with self.listener.subscribe(self.execution.id) as woken:
            while True:
                woken.clear()
                batch = await self._read()
                for event, message in batch:
                    data, ends = self._render(event, message)
                    yield data
                    self.after = event.sequence
                    if ends:
                        return
                if len(batch) == BATCH:
                    continue
                if already_terminal:
                    # Its whole log was written before the request: nothing more will come.
                    return
                try:
                    await asyncio.wait_for(woken.wait(), self.keep_alive_seconds)
                except TimeoutError:
                    yield KEEP_ALIVE

"""Writing a pydantic-ai run into the execution's conversation while it happens.

``Transcript.sync`` is called at every step of the run with the messages so far; it writes the
parts it has not written yet, each batch in one INSERT committed on its own (no connection is
held across a model call), built once per number of rows. Requests are written before they are
sent, responses as soon as they arrive, tool results as soon as the tools return. The last
entries of a run are written with its outcome, in the same statement (``workers.run.outcome``).

Each entry's payload says which ``attempt`` wrote it. An attempt that resumes an execution
(``workers.run.durability``) replays the model responses of the earlier attempts: the parts up to
the last response it replays are in the trace already and are not written again; a tool result
taken from the journal is marked ``replayed``.

Each INSERT is fenced by the attempt (``app.executions.transitions.attempt_holds``): once
another attempt took the execution over, or it ended, this attempt's writes insert nothing,
and the run is stopped (``on_lost``) instead of writing on beside its successor.
"""

import functools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, cast

from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_core import to_jsonable_python
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    Insert,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.budgets.usage import finite_cost
from app.conversations.models import Message
from app.conversations.trace import ROWS_PER_STATEMENT, TRACE_COLUMNS, TraceEntry, trace_values
from app.core.database_errors import is_database_outage
from app.executions.transitions import attempt_holds, attempt_values
from app.journal.repository import fenced_step_write, step_values, write_step
from workers.run.database import in_one_statement
from workers.run.durability import RunJournal

logger = logging.getLogger(__name__)


def _describe(content: BinaryContent) -> str:
    # Files are described, not copied: the conversation already links the uploads.
    return f"[{content.media_type}, {len(content.data)} bytes]"


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr, bytes_mode="base64")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, BinaryContent):
        return _describe(content)
    if isinstance(content, Sequence) and all(isinstance(c, str | BinaryContent) for c in content):
        return "\n".join(_text(c) for c in content)
    return json.dumps(_jsonable(content), ensure_ascii=False)


def _arguments(part: ToolCallPart) -> Any:
    # A model may send arguments that are not JSON; pydantic-ai asks it to retry, and the
    # trace keeps what it sent.
    try:
        return _jsonable(part.args_as_dict())
    except ValueError:
        return part.args


def _request_entry(part: Any, message: ModelRequest) -> TraceEntry:
    if isinstance(part, SystemPromptPart):
        return TraceEntry("system", part.content)
    if isinstance(part, UserPromptPart):
        return TraceEntry("user", _text(part.content))
    if isinstance(part, ToolReturnPart):
        # A "retried" return carries the feedback sent back to the model (bad arguments, a
        # ModelRetry from a tool or from a validator on the result tool).
        return TraceEntry(
            "retry" if part.outcome == "retried" else "tool_result",
            _text(part.content),
            tool_name=part.tool_name,
            tool_call_id=part.tool_call_id,
            payload={"outcome": part.outcome},
        )
    if isinstance(part, RetryFeedbackPart):
        return TraceEntry("retry", _text(part.content))
    kind = str(getattr(part, "part_kind", type(part).__name__))
    return TraceEntry(kind, "", payload={"part": _jsonable(part)})


def _response_entry(part: Any, message: ModelResponse) -> TraceEntry:
    if isinstance(part, TextPart):
        return TraceEntry("assistant", part.content)
    if isinstance(part, ToolCallPart):
        return TraceEntry(
            "tool_call",
            part.args_as_json_str(),
            tool_name=part.tool_name,
            tool_call_id=part.tool_call_id,
            payload={"args": _arguments(part)},
        )
    if isinstance(part, ThinkingPart):
        return TraceEntry("thinking", part.content)
    kind = str(getattr(part, "part_kind", type(part).__name__))
    return TraceEntry(kind, "", payload={"part": _jsonable(part)})


def _response_details(message: ModelResponse) -> dict[str, Any]:
    return {
        "model_name": message.model_name,
        "usage": {
            "input_tokens": message.usage.input_tokens,
            "output_tokens": message.usage.output_tokens,
            # USD, when genai-prices knows the model (a next attempt counts on from it).
            "cost": finite_cost(message.usage.cost),
        },
    }


def entries_for(message: ModelMessage, parts: Sequence[Any]) -> list[TraceEntry]:
    """Trace entries for some parts of one message; a response's first entry names the model
    and the tokens it used."""
    if isinstance(message, ModelRequest):
        return [_request_entry(part, message) for part in parts]
    entries = [_response_entry(part, message) for part in parts]
    if entries and parts[0] is message.parts[0]:
        first = entries[0]
        details = _response_details(message)
        entries[0] = TraceEntry(
            first.role,
            first.content,
            tool_name=first.tool_name,
            tool_call_id=first.tool_call_id,
            payload={**(first.payload or {}), **details},
        )
    return entries


@functools.lru_cache(maxsize=128)
def fenced_trace_insert(rows: int, only_if: ColumnElement[bool]) -> Insert:
    """``app.conversations.trace.trace_insert(rows, only_if)`` (the same columns, the same
    parameters: ``trace_values``) in a form SQLAlchemy caches compiled: the rows as one SELECT
    of parameters each, joined by UNION ALL, rather than a VALUES list, which SQLAlchemy
    compiles again at every execution (about 1 ms of CPU a write; multi-row VALUES have no
    cache key). The rows go in the order given (ids grow in that order). Built once per shape.
    """
    table = cast(Table, Message.__table__)
    selects = [
        select(
            *(
                bindparam(f"{name}_{row}", type_=table.c[name].type).label(name)
                for name in TRACE_COLUMNS
            )
        )
        for row in range(rows)
    ]
    entries = (selects[0] if rows == 1 else union_all(*selects)).subquery("entries")
    return insert(table).from_select(list(TRACE_COLUMNS), select(*entries.c).where(only_if))


def _insert(rows: int) -> Insert:
    # One statement per number of rows (a run writes a few different ones).
    return fenced_trace_insert(rows, attempt_holds())


async def _insert_rows(
    connection: AsyncConnection,
    conversation_id: int,
    entries: Sequence[TraceEntry],
    fence: dict[str, int],
) -> bool:
    result = await connection.execute(
        _insert(len(entries)), {**trace_values(conversation_id, entries), **fence}
    )
    # No row inserted when the attempt no longer holds its execution.
    return cast(CursorResult[Any], result).rowcount > 0


@functools.lru_cache(maxsize=32)
def _journal_with_trace_statement(rows: int) -> Executable:
    """A finished journal row (``fenced_step_write``) and ``rows`` trace entries, each fenced
    by the attempt, in one statement: the INSERTs as WITH queries of a SELECT counting the
    journal rows written. Built once per number of trace rows."""
    journaled = fenced_step_write(finished=True).returning(literal_column("1")).cte("journaled")
    traced = _insert(rows).cte("traced")
    return select(func.count()).select_from(journaled).add_cte(traced)


async def _journal_with_trace(
    connection: AsyncConnection, *, rows: int, values: dict[str, Any]
) -> bool:
    written = (await connection.execute(_journal_with_trace_statement(rows), values)).scalar()
    return bool(written)


async def append_entries(
    sessionmaker: async_sessionmaker[AsyncSession],
    conversation_id: int,
    entries: Sequence[TraceEntry],
    *,
    execution_id: int,
    attempt: int,
    retry_for: float,
    what: str = "writing the trace",
) -> bool:
    """Add the entries to the conversation, in order, while ``attempt`` holds the execution:
    one INSERT committed on its own (a very long batch takes several, each retried alone),
    retried while PostgreSQL is unreachable. False when the attempt lost the execution (taken
    over, or ended): nothing more is written."""
    fence = attempt_values(execution_id, attempt)
    for start in range(0, len(entries), ROWS_PER_STATEMENT):
        written = await in_one_statement(
            sessionmaker,
            partial(
                _insert_rows,
                conversation_id=conversation_id,
                entries=entries[start : start + ROWS_PER_STATEMENT],
                fence=fence,
            ),
            retry_for=retry_for,
            what=what,
        )
        if not written:
            return False
    return True


class Transcript:
    """The conversation of one execution, written part by part as the run goes by one of its
    attempts; once the attempt lost the execution, ``on_lost`` is called (the worker stops
    the run) and nothing more is written."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        conversation_id: int,
        *,
        execution_id: int,
        attempt: int,
        retry_for: float = 0.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.conversation_id = conversation_id
        self.execution_id = execution_id
        self.attempt = attempt
        # How long a write is tried again while PostgreSQL is unreachable.
        self.retry_for = retry_for
        self.on_lost = on_lost
        self.lost = False
        # The run's messages keep their parts alive, so their ids stay unique meanwhile.
        self._written: set[int] = set()
        # The journal of the run (it tells which tool results were replayed), and whether
        # the exchange it replays is in this trace already (an earlier attempt wrote it).
        self.journal: RunJournal | None = None
        self.replayed_is_written = False

    def stamped(self, entry: TraceEntry) -> TraceEntry:
        """The entry, its payload naming this attempt."""
        return replace(entry, payload={**(entry.payload or {}), "attempt": self.attempt})

    def _replay_window(self) -> int:
        # How many of the run's first model responses are replayed, their exchange already in
        # the trace: all of the journal's until the run goes live, then those it replayed.
        journal = self.journal
        if journal is None or not self.replayed_is_written:
            return 0
        if journal.live_from is None:
            return journal.model_responses()
        return journal.replayed.model_responses

    def _entry(self, entry: TraceEntry) -> TraceEntry:
        journal = self.journal
        if (
            journal is not None
            and entry.role == "tool_result"
            and entry.tool_call_id in journal.replayed_calls
        ):
            entry = replace(entry, payload={**(entry.payload or {}), "replayed": True})
        return self.stamped(entry)

    def unwritten(self, messages: Iterable[ModelMessage]) -> list[TraceEntry]:
        """Entries for the parts of ``messages`` not written yet, in order; from now on they
        count as written (the caller writes them)."""
        entries: list[TraceEntry] = []
        window = self._replay_window()
        responses = 0
        for message in messages:
            fresh = [part for part in message.parts if id(part) not in self._written]
            is_response = isinstance(message, ModelResponse)
            responses += is_response
            if not fresh:
                continue
            self._written.update(id(part) for part in fresh)
            if responses < window or (is_response and responses <= window):
                continue
            entries.extend(self._entry(entry) for entry in entries_for(message, fresh))
        return entries

    async def sync(self, messages: Iterable[ModelMessage], *then: TraceEntry) -> None:
        """Write the parts of ``messages`` not written yet, in order, then the ``then`` entries
        (in the same statement)."""
        await self.write([*self.unwritten(messages), *map(self.stamped, then)])

    async def write(self, entries: Sequence[TraceEntry]) -> None:
        if not entries or self.lost:
            return
        # One INSERT, committed on its own: one round trip. (It used to be a transaction with
        # synchronous_commit off; waiting for the WAL flush costs PostgreSQL well under a
        # millisecond here, and no CPU of ours, where BEGIN, SET and COMMIT cost three round
        # trips each time.)
        written = await append_entries(
            self.sessionmaker,
            self.conversation_id,
            entries,
            execution_id=self.execution_id,
            attempt=self.attempt,
            retry_for=self.retry_for,
        )
        if not written:
            self.lost = True
            logger.warning(
                "execution %s: attempt %s no longer holds it (taken over or ended); its trace "
                "is not written, and the run stops",
                self.execution_id,
                self.attempt,
            )
            if self.on_lost is not None:
                self.on_lost()

    async def journal_response(
        self, fence: dict[str, int], row: dict[str, Any], response: ModelResponse
    ) -> bool:
        """Write the journal row of a live model response (``workers.run.durability``) and the
        response's trace entries in one statement, both fenced by the attempt (both written
        or neither); the next ``sync`` finds the response written. False when the attempt no
        longer holds the execution."""
        fresh = [part for part in response.parts if id(part) not in self._written]
        entries = [self._entry(entry) for entry in entries_for(response, fresh)] if fresh else []
        if not self.lost and entries and len(entries) <= ROWS_PER_STATEMENT:
            values = step_values(fence=fence, **row)
            values.update(trace_values(self.conversation_id, entries))
            try:
                written = await in_one_statement(
                    self.sessionmaker,
                    partial(_journal_with_trace, rows=len(entries), values=values),
                    retry_for=self.retry_for,
                    what=f"execution {self.execution_id}: journaling a model response",
                )
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                # PostgreSQL refuses the entries (a value jsonb cannot hold): the row alone,
                # and the entries are left to the next sync, whose failure ends the run once
                # pydantic-ai counted the response's usage, as without the journal.
                logger.info("execution %s: the response's trace refused", self.execution_id)
            else:
                self._written.update(id(part) for part in fresh)
                return written
        return await in_one_statement(
            self.sessionmaker,
            partial(write_step, fence=fence, **row),
            retry_for=self.retry_for,
            what=f"execution {self.execution_id}: journaling a step",
        )

    async def note(self, role: str, content: str, **payload: Any) -> None:
        """An entry of our own: a validator's verdict, the outcome, a restarted attempt. Not
        while the run replays what an earlier attempt wrote (its verdicts are there)."""
        journal = self.journal
        if journal is not None and self.replayed_is_written and journal.live_from is None:
            return
        await self.write([self.stamped(TraceEntry(role, content, payload=payload or None))])

"""What the protocol adapters (A2A, MCP) do with executions: start one exactly as the REST API
does, and follow it to its end. The executions table stays the one source of truth."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import State

from app.core.config import Settings
from app.core.db import owned_session
from app.core.errors import DomainError
from app.events.listener import EventListener
from app.events.repository import status_events_after
from app.events.stream import execution_in_status
from app.executions.models import TERMINAL_STATUSES, ExecutionStatus
from app.executions.rows import ExecutionRow
from app.executions.start import Started, StartExecution, store_start, validate_start

# While the event listener is down (PostgreSQL connection lost), a follower reads the log on
# this timer instead of waiting for a notification that cannot come.
FALLBACK_POLL_SECONDS = 0.5
# An execution's statuses in the order they are entered: a follower never goes back (a status
# event it reads may be older than the row it started from).
_RANK = {ExecutionStatus.PENDING: 0, ExecutionStatus.IN_PROGRESS: 1}


def _rank(execution: ExecutionRow) -> int:
    return _RANK.get(execution.status, 2)


@dataclass(frozen=True)
class Services:
    """What an adapter needs of the running app (its ``app.state``)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    queue: ArqRedis
    settings: Settings
    listener: EventListener

    @classmethod
    def of(cls, state: State) -> "Services":
        return cls(state.sessionmaker, state.queue, state.settings, state.event_listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session owned as a request's is (app.core.dependencies.get_session): committed
        at the end, then its after-commit work run (the enqueue of a new execution); rolled
        back when the block raises."""
        async with owned_session(self.sessionmaker) as session:
            yield session


async def start(
    services: Services,
    command: StartExecution,
    *,
    then: Callable[[AsyncSession, ExecutionRow], Awaitable[None]] | None = None,
) -> Started:
    """Start the execution (or answer the one the command's Idempotency-Key started): the
    REST API's operation, so a refusal raises its DomainError. Validated before a session is
    taken; ``then`` runs in the same transaction, before the execution is enqueued."""
    valid = validate_start(command, services.settings)
    async with services.transaction() as session:
        started = await store_start(session, services.queue, services.settings, valid)
        if then is not None:
            await then(session, started.execution)
        return started


def is_terminal(execution: ExecutionRow) -> bool:
    return execution.status in TERMINAL_STATUSES


async def _status_events(
    services: Services, execution_id: int, after: int
) -> list[tuple[int, dict[str, Any]]]:
    # A session a read: a waiting follower holds no connection.
    async with services.sessionmaker() as session:
        return list(await status_events_after(session, execution_id, after))


async def watch(
    services: Services, execution: ExecutionRow, *, wait_seconds: float
) -> AsyncIterator[ExecutionRow]:
    """The execution as given, then as it is in each later status it enters, until it has
    ended or ``wait_seconds`` have passed.

    Follows the execution's event log as its SSE stream does (app.events.stream): woken by the
    event listener when its events commit, the status events read from the log, each status
    as its event recorded it (the result with the terminal one). While the listener is down,
    the log is read every ``FALLBACK_POLL_SECONDS`` instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    yield execution
    if is_terminal(execution):
        return
    after = 0
    with services.listener.subscribe(execution.id) as woken:
        while True:
            woken.clear()
            for sequence, payload in await _status_events(services, execution.id, after):
                after = sequence
                entered = execution_in_status(execution, payload)
                if _rank(entered) > _rank(execution):
                    execution = entered
                    yield execution
                if is_terminal(execution):
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if not services.listener.listening:
                remaining = min(remaining, FALLBACK_POLL_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)


async def follow(
    services: Services, execution: ExecutionRow, *, wait_seconds: float
) -> ExecutionRow:
    """The execution once it has ended, or as it stands after ``wait_seconds``."""
    last = execution
    async for last in watch(services, execution, wait_seconds=wait_seconds):  # noqa: B007
        pass
    return last


def _problems(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        return [line for key, item in value.items() for line in _problems(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [line for item in value for line in _problems(item, path)]
    return [f"{path.lstrip('.')}: {value}" if path else str(value)]


def describe(error: DomainError) -> str:
    """A DomainError's body as one line naming each field and its message (``detail`` first,
    as it is the summary)."""
    body = dict(error.body)
    detail = body.pop("detail", None)
    lines = [] if detail is None else _problems(detail, "")
    lines += _problems(body, "")
    return "; ".join(lines)

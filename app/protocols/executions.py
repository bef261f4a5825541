"""What the protocol adapters (A2A, MCP) do with executions: start one exactly as the REST API
does, and follow it to its end. The executions table stays the one source of truth."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import State

from app.agents.models import Agent
from app.auth.models import User
from app.core.config import Settings
from app.core.db import owned_session
from app.core.errors import DomainError
from app.executions import repository, service, start_request
from app.executions.models import TERMINAL_STATUSES
from app.executions.repository import ExecutionRow

# Until the per-execution event stream lands, a follower reads the execution's row: soon after
# it starts (a short execution is seen ending at once), then less often, every POLL_SECONDS at
# most (a stop-gap: one primary-key read per follower per tick).
FIRST_POLL_SECONDS = 0.02
POLL_GROWTH = 1.5
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Services:
    """What an adapter needs of the running app (its ``app.state``)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    queue: ArqRedis
    settings: Settings

    @classmethod
    def of(cls, state: State) -> "Services":
        return cls(state.sessionmaker, state.queue, state.settings)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session owned as a request's is (app.core.dependencies.get_session): committed
        at the end, then its after-commit work run (the enqueue of a new execution); rolled
        back when the block raises."""
        async with owned_session(self.sessionmaker) as session:
            yield session


async def start(
    services: Services,
    *,
    user: User,
    agent: Agent,
    execution_key: str,
    raw_input: Any,
    idempotency_key: str | None = None,
) -> service.Started:
    """Validate ``raw_input`` and start the execution (or answer the one ``idempotency_key``
    started): the REST API's checks and writes, so a refusal raises its DomainError."""
    validated = start_request.validate_input(agent, execution_key, raw_input, services.settings)
    if idempotency_key is not None:
        start_request.check_idempotency_key(idempotency_key)
    async with services.transaction() as session:
        return await service.start_execution(
            session,
            services.queue,
            services.settings,
            user=user,
            agent=agent,
            execution_key=execution_key,
            validated_input=validated,
            idempotency_key=idempotency_key,
        )


async def read(services: Services, execution_id: int) -> ExecutionRow | None:
    async with services.transaction() as session:
        return await repository.get_execution(session, execution_id)


def is_terminal(execution: ExecutionRow) -> bool:
    return execution["status"] in TERMINAL_STATUSES


async def watch(
    services: Services, execution: ExecutionRow, *, wait_seconds: float
) -> AsyncIterator[ExecutionRow]:
    """The execution as given, then again at each change of its status, until it has ended
    or ``wait_seconds`` have passed.

    Stop-gap until the execution event stream lands: reads the row, at growing intervals up
    to ``POLL_SECONDS``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    interval = FIRST_POLL_SECONDS
    yield execution
    while not is_terminal(execution) and (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * POLL_GROWTH, POLL_SECONDS)
        found = await read(services, execution["id"])
        if found is None:  # its agent was deleted meanwhile
            return
        if found["status"] != execution["status"]:
            yield found
        execution = found


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

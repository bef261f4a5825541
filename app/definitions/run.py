"""What a definition's prompt, tools and validators see of the execution they serve.

One ``ExecutionRun`` per run, handed to pydantic-ai as the run's ``deps``. Tools reach the
database through ``session()``, a short session of their own per call, never one held across
a model call.

Effects are fenced by the attempt: a worker paused long enough (GC, a VM migration, a
partition that heals) for another to take its execution over must not apply a tool's effect
when it wakes. ``session()`` therefore commits only while this run's attempt holds the
execution, checked in the same transaction as the tool's writes; a tool that calls a service
outside passes ``idempotency_key(tool_call_id)`` on, so that the service can tell a call an
earlier attempt made from a new one.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations.extraction_process import TextExtractor


class AttemptLost(Exception):
    """This run's attempt no longer holds its execution (another worker took it over, or it
    ended): the tool's effect was not applied. Raised out of the tool, it ends the attempt;
    the execution's outcome is its successor's."""


# Checks, first thing in a tool session's transaction, that the run's attempt still holds its
# execution, raising ``AttemptLost`` otherwise: given by the worker
# (``app.executions.transitions.hold_attempt``), which knows the executions' table.
Fence = Callable[[AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class AttachedFile:
    """A file uploaded with the execution (stored under the media root at ``storage_key``)."""

    filename: str
    content_type: str
    size: int
    storage_key: str


@dataclass
class ExecutionRun:
    execution_id: int
    agent_id: int
    dataset_id: int
    user_id: int
    conversation_id: int
    input: BaseModel
    sessionmaker: async_sessionmaker[AsyncSession]
    media_root: Path
    files: list[AttachedFile] = field(default_factory=list)
    # Extracts the text of files stored before extraction at upload, on their first read.
    text_extractor: TextExtractor | None = field(default=None, repr=False, compare=False)
    # What the definition's ``prepare`` returned: per-run state its tools and validators share.
    state: Any = None
    # The attempt this run is (1, 2, ... as the execution counts them): its sessions commit
    # only while it holds the execution (``fence``). None outside a worker's run: no fence.
    attempt: int | None = None
    fence: Fence | None = field(default=None, repr=False, compare=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short session for one unit of work, committed when the block ends without error,
        and only while this run's attempt holds the execution.

        Its transaction first takes a share lock on the execution's row where it is in
        progress under this attempt: a takeover (which counts one more attempt) waits for
        this commit, and one committed before makes this raise ``AttemptLost`` before any
        write, so nothing of a lost attempt lands."""
        async with self.sessionmaker() as session, session.begin():
            if self.fence is not None:
                await self.fence(session)
            yield session

    def idempotency_key(self, tool_call_id: str | None) -> str:
        """The key a tool passes on to a service it calls outside (an ``Idempotency-Key``
        header, say) for the call ``tool_call_id`` (``RunContext.tool_call_id``): the same in
        every attempt that makes this call (a replayed model response keeps its tool call
        ids), different for any other call."""
        if not tool_call_id:
            raise ValueError("an idempotency key is for a tool call: give its tool_call_id")
        return f"agentrun-{self.execution_id}-{tool_call_id}"

    def file_named(self, filename: str) -> AttachedFile | None:
        return next((f for f in self.files if f.filename == filename), None)

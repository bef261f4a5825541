"""What a definition's prompt, tools and validators see of the execution they serve.

One ``ExecutionRun`` per run, handed to pydantic-ai as the run's ``deps``. Tools reach the
database through ``sessionmaker`` with a short session of their own per call, never one held
across a model call.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations.extraction_process import TextExtractor


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

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short session for one unit of work, committed when the block ends without error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    def file_named(self, filename: str) -> AttachedFile | None:
        return next((f for f in self.files if f.filename == filename), None)

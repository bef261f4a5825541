"""What a worker process holds from startup to shutdown, built once (``workers.process.startup``).

arq hands every job its context dict; the worker keeps one entry in it, ``state``, this
dataclass, so that what a job reads is typed and checked.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.models import Model
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.conversations.extraction_process import TextExtractor
from app.core.config import Settings
from workers.run.agent_builder import AgentCache
from workers.run.heartbeat import Runs
from workers.run.model_clients import ModelFactory

# The key of the worker's state in arq's context dict.
STATE_KEY = "state"


@dataclass
class WorkerState:
    settings: Settings
    # arq's job timeout (the reconciler reads how long arq's in-progress mark lasts from it).
    job_timeout_seconds: float
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # The heartbeat's own connection (workers.run.heartbeat).
    heartbeat_engine: AsyncEngine
    heartbeat_sessionmaker: async_sessionmaker[AsyncSession]
    models: ModelFactory
    agents: AgentCache
    runs: Runs
    # Extracts the text of a run's files in a child process with limits (app.conversations).
    extractor: TextExtractor
    # Used instead of the agent's configured model when set (tests).
    model_override: Model | None = None
    # The heartbeat and the reconciler tasks.
    background: list[asyncio.Task[None]] = field(default_factory=list)


def state_of(ctx: Mapping[str, Any]) -> WorkerState:
    """The worker's state in arq's context dict."""
    state = ctx[STATE_KEY]
    assert isinstance(state, WorkerState), "the worker's startup did not run"
    return state

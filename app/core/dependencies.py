"""Request-scoped dependencies shared by every router.

All of them are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, two
thread hops per request for what is an attribute read.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import owned_session

# Requests that only read (RFC 9110's safe methods): their statements autocommit.
READ_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session, and the owner of its transaction (app/core/db.py): committed
    when the endpoint returns, then the work registered with ``after_commit`` runs; rolled
    back when it raises. Scoped to the endpoint's function (``SessionDep``), so the commit is
    done before the response is sent: a client told 202 finds the row. A GET's statements
    each commit by themselves (``create_read_sessionmaker``: no BEGIN/COMMIT round trips)."""
    state = request.app.state
    reads = request.method in READ_METHODS
    async with owned_session(state.read_sessionmaker if reads else state.sessionmaker) as session:
        yield session


async def get_settings_from_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_queue(request: Request) -> ArqRedis:
    queue: ArqRedis = request.app.state.queue
    return queue


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
QueueDep = Annotated[ArqRedis, Depends(get_queue)]

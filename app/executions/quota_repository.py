"""The statements of the quotas: what a user's executions used since a moment, and the lock
that counts his submits one after the other. SQLAlchemy Core on the caller's session."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Numeric, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.executions.models import AgenticExecution

_executions = cast(Table, AgenticExecution.__table__)
_users = cast(Table, User.__table__)


def _tokens(name: str) -> Any:
    # numeric, not bigint: a sum of bigints may be past bigint.
    return func.coalesce(_executions.c.usage[name].astext.cast(Numeric), 0)


# Served by ix_agentic_executions_user_started (user_id, started_at, id).
_USED_SINCE = select(
    func.count(),
    func.coalesce(func.sum(_tokens("input_tokens") + _tokens("output_tokens")), 0),
).where(
    _executions.c.user_id == bindparam("user_id"),
    _executions.c.started_at >= bindparam("since"),
)
_LOCK_USER = select(_users.c.id).where(_users.c.id == bindparam("user_id")).with_for_update()


@dataclass(frozen=True)
class Used:
    executions: int
    tokens: int


async def used_since(session: AsyncSession, user_id: int, since: datetime) -> Used:
    """The executions ``user_id`` started since ``since`` and the tokens they used (those
    still running count none yet: usage is stored when a run ends)."""
    row = (await session.execute(_USED_SINCE, {"user_id": user_id, "since": since})).one()
    return Used(executions=int(row[0]), tokens=int(row[1]))


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Hold the user's row until the transaction ends, so that two submits of one user are
    counted against his quota one after the other."""
    await session.execute(_LOCK_USER, {"user_id": user_id})

"""Agents, and who may reach them: members of the agent's dataset, and admins."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import User
from app.catalog.models import Dataset, DatasetMember
from app.core import sql
from app.core.errors import Invalid, NotFound
from app.definitions.registry import agent_types


def visible_agents(user: User) -> Select[Agent]:
    """Live agents ``user`` may use."""
    query = select(Agent).where(Agent.deleted.is_(False))
    if user.is_admin:
        return query
    member_of = select(DatasetMember.dataset_id).where(DatasetMember.user_id == user.id)
    return query.where(Agent.dataset_id.in_(member_of))


_agents = Agent.__table__
_members = DatasetMember.__table__
# Every start of an execution reads its agent: compiled once, run on asyncpg (app/core/sql.py).
_VISIBLE_AGENT = sql.compile_statement(
    select(_agents).where(
        _agents.c.id == bindparam("agent_id"),
        _agents.c.deleted.is_(False),
        or_(
            bindparam("is_admin", type_=Boolean),
            _agents.c.dataset_id.in_(
                select(_members.c.dataset_id).where(_members.c.user_id == bindparam("user_id"))
            ),
        ),
    )
)


async def get_visible_agent(session: AsyncSession, user: User, agent_id: int) -> Agent:
    """The agent, if ``user`` may use it; not attached to the session (read-only use)."""
    row = await sql.fetchrow(
        session, _VISIBLE_AGENT, agent_id=agent_id, is_admin=user.is_admin, user_id=user.id
    )
    if row is None:
        raise NotFound("Agent not found.")
    return Agent(**dict(row))


async def list_visible_agents(session: AsyncSession, user: User) -> Sequence[Agent]:
    return (await session.scalars(visible_agents(user).order_by(Agent.id))).all()


async def create_agent(
    session: AsyncSession,
    *,
    name: str,
    dataset_id: int,
    agent_type: str,
    file_upload: bool = False,
    model_settings: dict[str, Any] | None = None,
) -> Agent:
    """Create an agent of a registered type on an existing dataset."""
    known = agent_types()
    if agent_type not in known:
        raise Invalid(
            {"agent_type": f"Unknown agent type {agent_type!r}. Known: {', '.join(sorted(known))}."}
        )
    if await session.get(Dataset, dataset_id) is None:
        raise Invalid({"dataset_id": "Dataset not found."})
    agent = Agent(
        name=name,
        dataset_id=dataset_id,
        agent_type=agent_type,
        file_upload=file_upload,
        model_settings=model_settings or {},
    )
    session.add(agent)
    await session.commit()
    return agent

"""Agents, and who may reach them: members of the agent's dataset, and admins."""

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import User
from app.catalog.models import DatasetMember
from app.core.errors import NotFound


def visible_agents(user: User) -> Select[tuple[Agent]]:
    """Live agents ``user`` may use."""
    query = select(Agent).where(Agent.deleted.is_(False))
    if user.is_admin:
        return query
    member_of = select(DatasetMember.dataset_id).where(DatasetMember.user_id == user.id)
    return query.where(Agent.dataset_id.in_(member_of))


async def get_visible_agent(session: AsyncSession, user: User, agent_id: int) -> Agent:
    agent = await session.scalar(visible_agents(user).where(Agent.id == agent_id))
    if agent is None:
        raise NotFound("Agent not found.")
    return agent

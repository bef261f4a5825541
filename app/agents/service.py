"""Agents, and who may reach them: members of the agent's dataset, and admins."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.model_keys import key_env_problem
from app.agents.models import Agent
from app.auth.models import User
from app.auth.repository import TokenWith
from app.auth.service import Authenticated, authenticate_with
from app.budgets.limits import Limits
from app.catalog.models import Dataset, DatasetMember
from app.core.config import Settings, get_settings
from app.core.db import utcnow
from app.core.errors import Invalid, NotFound
from app.definitions.registry import agent_types

_agents = Agent.__table__
_members = DatasetMember.__table__


def _usable_by(is_admin: ColumnElement[bool], user_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Who may use an agent: admins, and members of its dataset, while it is not deleted."""
    member_of = select(_members.c.dataset_id).where(_members.c.user_id == user_id)
    return and_(_agents.c.deleted.is_(False), or_(is_admin, _agents.c.dataset_id.in_(member_of)))


def visible_agents(user: User) -> Select[Agent]:
    """Live agents ``user`` may use."""
    return select(Agent).where(
        _usable_by(literal(user.is_admin, Boolean), literal(user.id, Integer))
    )


# A request on one agent (start an execution, list its types, read it) authenticates its
# token and reads the agent in one round trip.
_TOKEN_AND_VISIBLE_AGENT = TokenWith.build(
    "agent_",
    _agents,
    {column.name: column for column in _agents.columns},
    lambda token: and_(
        _agents.c.id == bindparam("agent_id", type_=Integer),
        _usable_by(token.c.is_admin, token.c.id),
    ),
)


async def authenticate_for_agent(
    session: AsyncSession, raw_key: str, agent_id: int
) -> tuple[Authenticated | None, Agent | None]:
    """The live token with this key and its user (None if there is none), and the agent if
    that user may use it (None if not)."""
    found, columns = await authenticate_with(
        session, raw_key, _TOKEN_AND_VISIBLE_AGENT, agent_id=agent_id
    )
    return found, None if columns is None else Agent(**columns)


async def list_visible_agents(
    session: AsyncSession, user: User, dataset_id: int | None = None
) -> Sequence[Agent]:
    query = visible_agents(user)
    if dataset_id is not None:
        query = query.where(Agent.dataset_id == dataset_id)
    return (await session.scalars(query.order_by(Agent.id))).all()


async def get_visible_agent(session: AsyncSession, user: User, agent_id: int) -> Agent:
    """The live agent ``user`` may use, else 404 (as the API's agent routes answer)."""
    agent = await session.scalar(visible_agents(user).where(Agent.id == agent_id))
    if agent is None:
        raise NotFound("Agent not found.")
    return agent


async def delete_agent(session: AsyncSession, agent_id: int) -> None:
    """Soft delete, as Enthusiast: the agent takes no new executions and leaves the lists;
    its executions, conversations and files stay readable (and a running one finishes)."""
    deleted = await session.scalar(
        update(Agent)
        .where(Agent.id == agent_id, Agent.deleted.is_(False))
        .values(deleted=True, deleted_at=utcnow())
        .returning(Agent.id)
    )
    if deleted is None:
        raise NotFound("Agent not found.")


async def create_agent(
    session: AsyncSession,
    *,
    name: str,
    dataset_id: int,
    agent_type: str,
    file_upload: bool = False,
    model_settings: dict[str, Any] | None = None,
    settings: Settings | None = None,
    limits: Limits | None = None,
) -> Agent:
    """Create an agent of a registered type on an existing dataset. ``settings`` (unset: the
    service's) decide which variables may hold an agent's own key."""
    known = agent_types()
    if agent_type not in known:
        raise Invalid(
            {"agent_type": f"Unknown agent type {agent_type!r}. Known: {', '.join(sorted(known))}."}
        )
    key_env = (model_settings or {}).get("api_key_env")
    if key_env is not None and (problem := key_env_problem(key_env, settings or get_settings())):
        raise Invalid({"model.api_key_env": problem})
    if await session.get(Dataset, dataset_id) is None:
        raise Invalid({"dataset_id": "Dataset not found."})
    agent = Agent(
        name=name,
        dataset_id=dataset_id,
        agent_type=agent_type,
        file_upload=file_upload,
        model_settings=model_settings or {},
        limits=None if limits is None else limits.stored(),
    )
    session.add(agent)
    await session.flush()
    return agent


async def get_live_agent(session: AsyncSession, agent_id: int) -> Agent:
    """The agent with this id unless it was deleted, whoever may use it (an admin's view)."""
    agent = await session.get(Agent, agent_id)
    if agent is None or agent.deleted:
        raise NotFound("Agent not found.")
    return agent


async def set_agent_limits(session: AsyncSession, agent_id: int, limits: Limits) -> Agent:
    """Set the usage limits of a live agent's executions (all null: none); they apply to
    runs that start from now on."""
    agent = await get_live_agent(session, agent_id)
    agent.limits = limits.stored()
    await session.flush()
    return agent

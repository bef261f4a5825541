"""The agent a request is about, with the user it comes from."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.agents.models import Agent
from app.agents.service import authenticate_for_agent
from app.auth.dependencies import admitted_user, presented_key, token_header
from app.auth.models import User
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import NotFound
from app.core.ids import RowId


@dataclass(frozen=True)
class AgentRequest:
    user: User
    # Not attached to the session (read-only use).
    agent: Agent


async def agent_request(
    agent_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Depends(token_header)],
) -> AgentRequest:
    """The authenticated user and the agent of the path, if the user may use it (else 404).

    Answers as ``current_user`` then a read of ``visible_agents`` would (401, then 429, then 404),
    from one statement instead of two.
    """
    found, agent = await authenticate_for_agent(session, presented_key(authorization), agent_id)
    user = await admitted_user(request, settings, found)
    if agent is None:
        raise NotFound("Agent not found.")
    return AgentRequest(user=user, agent=agent)


AgentRequestDep = Annotated[AgentRequest, Depends(agent_request)]

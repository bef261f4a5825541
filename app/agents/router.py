from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from app.agents import service
from app.agents.dependencies import AgentRequestDep
from app.agents.schemas import AgentCreate, AgentOut, agent_out
from app.auth.dependencies import AdminUser, CurrentUser
from app.budgets.limits import Limits
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Forbidden, error_responses

router = APIRouter(tags=["agents"])

AGENT_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such agent, or not visible to you.",
        "content": {"application/json": {"example": {"detail": "Agent not found."}}},
    }
}


@router.post(
    "/agents/",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent",
    description=(
        "An agent is an agent type (which execution types it offers) working on a dataset, "
        "with the LLM settings it runs with. Members of the dataset may use it."
    ),
    responses={
        400: {
            "description": "Invalid body (fields named), an unknown `agent_type`, a "
            "`dataset_id` that does not exist, a `model.base_url` that is not an http(s) URL "
            "without a query, or a `model.api_key_env` outside AGENTRUN_MODEL_KEY_ENV_PREFIX.",
            "content": {
                "application/json": {
                    "example": {
                        "agent_type": "Unknown agent type 'x'. Known: catalog-enrichment, "
                        "structured-task."
                    }
                }
            },
        },
        **error_responses(Forbidden),
    },
)
async def create_agent(
    body: AgentCreate, session: SessionDep, settings: SettingsDep, _: AdminUser
) -> AgentOut:
    agent = await service.create_agent(
        session,
        name=body.name,
        dataset_id=body.dataset_id,
        agent_type=body.agent_type,
        file_upload=body.file_upload,
        model_settings=body.model.model_dump(exclude_none=True) if body.model else None,
        settings=settings,
        limits=body.limits,
    )
    return agent_out(agent)


@router.get(
    "/agents/",
    summary="List agents",
    description="The agents on datasets you are a member of (all of them for admins), by id; "
    "`?dataset=` keeps one dataset's (Enthusiast's web client asks so).",
)
async def list_agents(
    session: SessionDep,
    user: CurrentUser,
    dataset: Annotated[int | None, Query(description="Only agents on this dataset.")] = None,
) -> list[AgentOut]:
    return [agent_out(a) for a in await service.list_visible_agents(session, user, dataset)]


@router.delete(
    "/agents/{agent_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an agent",
    description="Soft delete: the agent takes no new executions and leaves the lists; its "
    "executions and their conversations stay readable. For admins.",
    responses={
        **error_responses(Forbidden),
        **AGENT_NOT_FOUND,
    },
)
async def delete_agent(agent_id: int, session: SessionDep, _: AdminUser) -> None:
    await service.delete_agent(session, agent_id)


@router.get(
    "/agents/{agent_id}/",
    summary="Get an agent",
    description="One agent you may use.",
    responses={**AGENT_NOT_FOUND},
)
async def read_agent(caller: AgentRequestDep) -> AgentOut:
    return agent_out(caller.agent)


@router.put(
    "/agents/{agent_id}/limits/",
    summary="Set an agent's usage limits",
    description=(
        "The limits each execution of the agent is held to: `max_model_requests`, "
        "`max_total_tokens`, `max_cost` (USD). An execution's own `limits` apply too, the "
        "stricter of each winning; a run past one ends `failed` with `budget_exceeded`. A "
        "field left out or null sets no limit. Applies to runs that start from now on. Admins "
        "only."
    ),
    responses={
        400: {
            "description": "A limit that is not a positive number, or an unknown field.",
            "content": {
                "application/json": {"example": {"max_cost": "Input should be greater than 0"}}
            },
        },
        **error_responses(Forbidden),
        **AGENT_NOT_FOUND,
    },
)
async def set_agent_limits(
    agent_id: int, body: Limits, session: SessionDep, _: AdminUser
) -> AgentOut:
    return agent_out(await service.set_agent_limits(session, agent_id, body))

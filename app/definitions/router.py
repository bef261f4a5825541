from fastapi import APIRouter

from app.agents.service import get_visible_agent
from app.auth.dependencies import CurrentUser
from app.core.dependencies import SessionDep
from app.definitions.registry import definitions_for
from app.definitions.schemas import ExecutionDefinitionOut

router = APIRouter(tags=["agentic executions"])


@router.get(
    "/agents/{agent_id}/agentic-execution-definitions/",
    summary="List the execution types an agent offers",
    description=(
        "The execution types registered for the agent's type, each with the JSON schema of "
        "the `input` it takes. An empty list if none is registered."
    ),
    responses={404: {"description": "No such agent, or not visible to you."}},
)
async def list_execution_definitions(
    agent_id: int, session: SessionDep, user: CurrentUser
) -> list[ExecutionDefinitionOut]:
    agent = await get_visible_agent(session, user, agent_id)
    return [
        ExecutionDefinitionOut(
            key=d.key, name=d.name, description=d.description, input_schema=d.input_schema()
        )
        for d in definitions_for(agent.agent_type)
    ]

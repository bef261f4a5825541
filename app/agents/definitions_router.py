"""GET /api/agents/{id}/agentic-execution-definitions/: the execution types an agent offers
(the plugin seam, app.definitions, knows no agent: the route is the agents')."""

from fastapi import APIRouter

from app.agents.dependencies import AgentRequestDep
from app.definitions.registry import definitions_for
from app.definitions.schemas import ExecutionDefinitionOut

router = APIRouter(tags=["agentic executions"])


@router.get(
    "/agents/{agent_id}/agentic-execution-definitions/",
    summary="List the execution types an agent offers",
    description=(
        "The execution types registered for the agent's type, each with the JSON schema of "
        "the `input` it takes, the schema of its `result` and its version. An empty list if "
        "none is registered."
    ),
    responses={404: {"description": "No such agent, or not visible to you."}},
)
async def list_execution_definitions(caller: AgentRequestDep) -> list[ExecutionDefinitionOut]:
    return [
        ExecutionDefinitionOut(
            key=d.key,
            name=d.name,
            description=d.description,
            version=d.version,
            input_schema=d.input_schema(),
            output_schema=d.output_schema(),
        )
        for d in definitions_for(caller.agent.agent_type)
    ]

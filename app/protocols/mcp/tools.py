"""MCP tools: one per execution type of each agent the token can see, called by starting the
execution and answering its result (app.protocols.executions, the REST API's services)."""

import json
import re
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

from app.agents.models import Agent
from app.agents.service import authenticate_for_agent, list_visible_agents
from app.auth.service import Authenticated
from app.core.errors import DomainError
from app.core.rate_limit import check_rate_limit
from app.definitions.base import ExecutionDefinition
from app.definitions.registry import definitions_for, find_definition
from app.executions.models import ExecutionStatus
from app.executions.rows import ExecutionRow
from app.executions.start import Origin, StartExecution
from app.protocols import executions
from app.protocols.executions import Services

# Where the endpoint (app.protocols.mcp.endpoint) leaves the caller's token and key.
AUTHENTICATED = "agentrun.authenticated"
PRESENTED_KEY = "agentrun.presented_key"
# "agent_7__catalog-enrichment": stable, and within the names MCP clients accept.
_TOOL_NAME = re.compile(r"agent_(\d{1,10})__([A-Za-z0-9_.-]{1,100})")


def tool_name(agent: Agent, execution_key: str) -> str:
    return f"agent_{agent.id}__{execution_key}"


def _tool(agent: Agent, definition: ExecutionDefinition) -> types.Tool:
    description = definition.description or definition.name
    return types.Tool(
        name=tool_name(agent, definition.key),
        title=f"{agent.name}: {definition.name}",
        description=f"{description} (agent {agent.name!r}, id {agent.id}; an agentic execution "
        "of type " + f"{definition.key!r}: its result when it finishes, or its id to follow.)",
        input_schema=definition.input_schema(),
        output_schema=definition.output_schema(),
    )


def _request(ctx: ServerRequestContext[Any, Any]) -> Request:
    request = ctx.request
    if not isinstance(request, Request):  # only served over Streamable HTTP
        raise MCPError(types.INTERNAL_ERROR, "No HTTP request to authenticate.")
    return request


def _text_result(text: str, *, error: bool, structured: Any = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=error,
    )


def _outcome(execution: ExecutionRow, services: Services) -> types.CallToolResult:
    status = execution.status
    if status == ExecutionStatus.FINISHED:
        result = execution.result
        # structuredContent is an object; a type without an Output may answer any JSON.
        structured = result if isinstance(result, dict) else {"result": result}
        return _text_result(
            json.dumps(result, ensure_ascii=False), error=False, structured=structured
        )
    if status == ExecutionStatus.FAILED:
        code, explanation = execution.failure_code, execution.failure_explanation
        return _text_result(
            f"Execution {execution.id} failed: {code}: {explanation}",
            error=True,
            structured={
                "execution_id": execution.id,
                "failure_code": code,
                "failure_explanation": explanation,
            },
        )
    # Still running past the wait: not a result, so flagged as an error for clients (a result
    # would have to match the tool's outputSchema), with what to follow.
    root_path = services.settings.root_path
    return _text_result(
        f"Execution {execution.id} is still {status} after "
        f"{services.settings.protocol_wait_seconds:g} s; follow it at "
        f"{root_path}/api/agentic-executions/{execution.id}/ (or the A2A task of that id).",
        error=True,
        structured={"execution_id": execution.id, "status": status},
    )


async def list_tools(
    services: Services, ctx: ServerRequestContext[Any, Any]
) -> types.ListToolsResult:
    authenticated: Authenticated = _request(ctx).scope[AUTHENTICATED]
    async with services.transaction() as session:
        agents = await list_visible_agents(session, authenticated.user)
    return types.ListToolsResult(
        tools=[
            _tool(agent, definition)
            for agent in agents
            for definition in definitions_for(agent.agent_type)
        ]
    )


async def call_tool(
    services: Services, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    request = _request(ctx)
    unknown = MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name!r}.")
    matched = _TOOL_NAME.fullmatch(params.name)
    if matched is None:
        raise unknown
    agent_id, execution_key = int(matched[1]), matched[2]
    async with services.transaction() as session:
        found, agent = await authenticate_for_agent(session, request.scope[PRESENTED_KEY], agent_id)
    # Another user's agent is as unknown as one that does not exist (the REST API's 404).
    if found is None or agent is None or find_definition(agent.agent_type, execution_key) is None:
        raise unknown
    try:
        await check_rate_limit(
            services.queue,
            namespace=services.settings.queue_name,
            subject=f"token:{found.token_id}",
            per_minute=services.settings.rate_limit_per_minute,
        )
        command = StartExecution(
            user=found.user,
            agent=agent,
            origin=Origin.MCP,
            execution_key=execution_key,
            raw_input=params.arguments or {},
        )
        started = await executions.start(services, command)
    except DomainError as exc:
        return _text_result(executions.describe(exc), error=True)

    ended = started.execution
    async for ended in executions.watch(
        services, started.execution, wait_seconds=services.settings.protocol_wait_seconds
    ):
        # Progress only grows: submitted 0, running 1, ended 2 (of 2).
        step = {ExecutionStatus.PENDING: 0, ExecutionStatus.IN_PROGRESS: 1}.get(ended.status, 2)
        await ctx.session.report_progress(step, 2, f"Execution {ended.id} {ended.status}")
    return _outcome(ended, services)


def create_server(services: Services) -> Server[Any]:
    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await list_tools(services, ctx)

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await call_tool(services, ctx, params)

    return Server(
        "agentrun",
        version="0.1.0",
        instructions="Each tool starts an agentic execution of one agent and answers its result.",
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )

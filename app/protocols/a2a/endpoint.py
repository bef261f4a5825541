"""``/a2a/{agent_id}``: each agent as an A2A agent, served by the A2A SDK's JSON-RPC and
HTTP+JSON apps over app.protocols.a2a.handler, behind our ``Authorization: Token`` check."""

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import (
    DefaultServerCallContextBuilder,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, PROTOCOL_VERSION_1_0, TransportProtocol
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

from app.agents.models import Agent
from app.agents.service import authenticate_for_agent
from app.auth.dependencies import presented_key
from app.core.errors import DomainError, NotFound, Unauthenticated
from app.core.ids import INT32_MAX, NO_SUCH_ID
from app.definitions.registry import definitions_for
from app.executions.a2a_task import JSON
from app.protocols.a2a.handler import CALLER, Caller, ExecutionsRequestHandler
from app.protocols.executions import Services

PATH = "/a2a/{agent_id}"
JSONRPC_PATH = "/jsonrpc"
REST_PATH = "/rest"
SCHEME = "token"


def agent_card(agent: Agent, base_url: str) -> AgentCard:
    return AgentCard(
        name=agent.name,
        description=f"agentrun agent {agent.id} ({agent.agent_type}): send a data part "
        '{"execution_key": <a skill id>, "input": {...}} to start an agentic execution.',
        version="0.1.0",
        supported_interfaces=[
            AgentInterface(
                url=base_url + JSONRPC_PATH,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
            AgentInterface(
                url=base_url + REST_PATH,
                protocol_binding=TransportProtocol.HTTP_JSON,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        security_schemes={
            SCHEME: SecurityScheme(
                api_key_security_scheme=APIKeySecurityScheme(
                    location="header",
                    name="Authorization",
                    description="`Token <key>`: the API's token.",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={SCHEME: StringList()})],
        default_input_modes=[JSON],
        default_output_modes=[JSON],
        skills=[
            AgentSkill(
                id=definition.key,
                name=definition.name,
                description=definition.description or definition.name,
                tags=[agent.agent_type],
                input_modes=[JSON],
                output_modes=[JSON],
            )
            for definition in definitions_for(agent.agent_type)
        ],
    )


async def _card(request: Request) -> Response:
    caller: Caller = request.scope[CALLER]
    base_url = str(request.base_url).rstrip("/") + PATH.format(agent_id=caller.agent.id)
    card = agent_card(caller.agent, base_url)
    return JSONResponse(agent_card_to_dict(card))


class _CallerContextBuilder(DefaultServerCallContextBuilder):
    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[CALLER] = request.scope[CALLER]
        # The SDK reads A2A-Version from them; the token is the caller's now, not kept.
        context.state["headers"].pop("authorization", None)
        return context


def _agent_routes(state: State) -> Router:
    handler = ExecutionsRequestHandler(state)
    builder = _CallerContextBuilder()
    return Router(
        routes=[
            Route(AGENT_CARD_WELL_KNOWN_PATH, _card, methods=["GET"]),
            *create_jsonrpc_routes(handler, JSONRPC_PATH, context_builder=builder),
            *create_rest_routes(handler, context_builder=builder, path_prefix=REST_PATH),
        ]
    )


def _agent_id(raw: str) -> int:
    """The path's agent id; one no row can have (not digits, past int32) as ``NO_SUCH_ID``, so
    that it answers as an unknown agent does (401 without a token, then 404), as RowId does."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(INT32_MAX)):
        return NO_SUCH_ID
    value = int(raw)
    return value if value <= INT32_MAX else NO_SUCH_ID


class A2aAgentEndpoint:
    """The ASGI app below ``/a2a/{agent_id}``: 401 without a live token, 404 for an agent the
    token's user may not use (as the REST API), else the SDK's routes."""

    def __init__(self) -> None:
        self._routes: Router | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: State = scope["app"].state
        if self._routes is None:
            self._routes = _agent_routes(state)
        raw_id = str(scope["path_params"].get("agent_id", ""))
        headers = dict(scope["headers"])
        try:
            key = presented_key(headers.get(b"authorization", b"").decode("latin-1"))
            async with Services.of(state).transaction() as session:
                found, agent = await authenticate_for_agent(session, key, _agent_id(raw_id))
            if found is None:
                raise Unauthenticated("Invalid token.")
            if agent is None:
                raise NotFound("Agent not found.")
        except DomainError as exc:
            extra = {"WWW-Authenticate": "Token"} if isinstance(exc, Unauthenticated) else {}
            response = JSONResponse(exc.body, status_code=exc.status_code, headers=extra)
            await response(scope, receive, send)
            return
        await self._routes({**scope, CALLER: Caller(found, agent)}, receive, send)


def a2a_mount() -> Mount:
    return Mount(PATH, app=A2aAgentEndpoint())

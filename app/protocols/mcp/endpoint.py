"""``/mcp``: the MCP SDK's Streamable HTTP transport, behind our ``Authorization: Token`` check.

Stateless (no MCP session kept in the process): any API replica answers any request, and each
``tools/call`` streams its progress on its own response.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import State
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from app.auth.dependencies import presented_key
from app.auth.service import authenticate_token
from app.core.errors import Unauthenticated
from app.protocols.executions import Services
from app.protocols.mcp.tools import AUTHENTICATED, PRESENTED_KEY, create_server

PATH = "/mcp"


@asynccontextmanager
async def run_mcp(state: State) -> AsyncIterator[None]:
    """Serve MCP while the app runs (in its lifespan): the SDK's manager runs once, in a task
    of its own, as its task group must end in the task it began in (a lifespan may be left
    from another task than it was entered in)."""
    manager = StreamableHTTPSessionManager(
        app=create_server(Services.of(state)),
        stateless=True,
        # Its DNS-rebinding check guards cookie-less browsers' localhost servers; ours needs a
        # token on every request, and answers on whatever host the gateway gives it.
        security_settings=None,
    )
    running, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with manager.run():
            running.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    started = asyncio.create_task(running.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # failed to start: raise its error
        started.cancel()
        task.result()
    state.mcp_manager = manager
    try:
        yield
    finally:
        del state.mcp_manager
        stop.set()
        await task


class McpEndpoint:
    """The ASGI app at ``/mcp``: 401 without a live token, else the SDK's transport."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: State = scope["app"].state
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        try:
            key = presented_key(authorization)
            async with Services.of(state).transaction() as session:
                found = await authenticate_token(session, key)
            if found is None:
                raise Unauthenticated("Invalid token.")
        except Unauthenticated as exc:
            response = JSONResponse(
                exc.body, status_code=exc.status_code, headers={"WWW-Authenticate": "Token"}
            )
            await response(scope, receive, send)
            return
        manager: StreamableHTTPSessionManager = state.mcp_manager
        await manager.handle_request(
            {**scope, AUTHENTICATED: found, PRESENTED_KEY: key}, receive, send
        )

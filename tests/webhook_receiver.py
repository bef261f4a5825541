"""A webhook receiver on a loopback port: records what it is sent, answers as told."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    port: int = 0
    received: list[Received] = field(default_factory=list)
    # Status codes of the next answers, in order; 200 once they are used up.
    answers: list[int] = field(default_factory=list)
    # Seconds before each answer (a slow receiver).
    delay: float = 0.0

    async def _hook(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        await asyncio.sleep(self.delay)
        status = self.answers.pop(0) if self.answers else 200
        return PlainTextResponse(f"answered {status}", status_code=status)

    async def until(self, count: int, within: float = 15) -> list[Received]:
        async with asyncio.timeout(within):
            while len(self.received) < count:
                await asyncio.sleep(0.02)
        return self.received


@asynccontextmanager
async def webhook_receiver(
    *, certificate: tuple[Path, Path] | None = None
) -> AsyncIterator[Receiver]:
    """Over HTTP, or over HTTPS with ``certificate`` (its PEM file and its key's)."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver._hook, methods=["POST"])])
    certfile, keyfile = certificate or (None, None)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_config=None,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    scheme = "https" if certificate else "http"
    port = server.servers[0].sockets[0].getsockname()[1]
    receiver.url = f"{scheme}://127.0.0.1:{port}/hook"
    receiver.port = port
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task

"""How each HTTP request ended, told to whoever records it (the request log, the metrics).

Both need the same facts (status, response size, duration), so one ASGI layer collects them
once, instead of each wrapping ``send`` and timing the request on its own.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class CompletedRequest:
    scope: Scope
    # 500 when the application raised before it started a response.
    status: int
    # The response's Content-Length (0 when it has none, as a streamed response).
    response_size: int
    duration_seconds: float


RequestObserver = Callable[[CompletedRequest], None]


class CompletedRequestMiddleware:
    def __init__(self, app: ASGIApp, observers: Sequence[RequestObserver]) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_size = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status, response_size
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-length":
                        response_size = int(value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            completed = CompletedRequest(
                scope=scope,
                status=status,
                response_size=response_size,
                duration_seconds=time.perf_counter() - started,
            )
            for observe in self.observers:
                observe(completed)
